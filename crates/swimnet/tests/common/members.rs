//! Membership as any agent reports it, and the [`Node`] trait.

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub addr: String,
    pub status: String,
    pub tags: BTreeMap<String, String>,
    pub protocol: Option<(u64, u64, u64)>,
    pub incarnation: Option<u64>,
}

/// Parses `{"members":[...]}` (serf's `members -format=json` and swimnet's).
pub fn parse_members(json: &str) -> Result<Vec<Member>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("bad JSON ({e}): {json}"))?;
    let arr = v
        .get("members")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no \"members\" array: {json}"))?;
    let mut out = Vec::new();
    for m in arr {
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        let name = s("name").ok_or_else(|| format!("member without name: {m}"))?;
        let status = s("status").ok_or_else(|| format!("member without status: {m}"))?;
        let addr = s("addr").unwrap_or_default();
        let mut tags = BTreeMap::new();
        if let Some(t) = m.get("tags").and_then(Value::as_object) {
            for (k, v) in t {
                tags.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
            }
        }
        let protocol = m.get("protocol").and_then(|p| {
            Some((
                p.get("min")?.as_u64()?,
                p.get("max")?.as_u64()?,
                p.get("version")?.as_u64()?,
            ))
        });
        let incarnation = m.get("incarnation").and_then(Value::as_u64);
        out.push(Member {
            name,
            addr,
            status,
            tags,
            protocol,
            incarnation,
        });
    }
    Ok(out)
}

pub fn find<'a>(members: &'a [Member], name: &str) -> Option<&'a Member> {
    members.iter().find(|m| m.name == name)
}

pub fn status_of(members: &[Member], name: &str) -> Option<String> {
    find(members, name).map(|m| m.status.clone())
}

pub fn summary(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| format!("{}={}", m.name, m.status))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Anything that can report its view of the membership.
pub trait Node {
    fn name(&self) -> &str;
    fn members(&self) -> Result<Vec<Member>, String>;
    fn observer(&self) -> Observer;
}
