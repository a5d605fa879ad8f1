#[test]
fn a_quick_second_restart_is_answered_despite_the_answer_rate_limit() {
    let cfg = adopting();
    let mut c = cluster(cfg.clone());
    c.on(0, |db, now| db.create_entry(now, NET, T, "a0", b"x"))
        .unwrap();
    c.run_for(Duration::from_secs(2));
    for round in 0..2 {
        let kept = c.nodes[B].restart_state(usize::MAX);
        c.down.insert(B);
        c.run_for(Duration::from_millis(500));
        c.replace_node(B, cfg.clone(), 100 + round);
        c.on(B, |db, now| db.restore(now, kept));
        let seed = addr(0);
        c.on(B, |db, now| db.join(now, &[seed])).unwrap();
        // Well within the answer interval (5 s) of the previous run's
        // syncs, and far from the next periodic bulk sync (30 s).
        c.run_for(Duration::from_secs(2));
        let keys: Vec<String> = c.table(B, NET, T).into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["a0", "k0", "k1", "k2", "k3"], "restart {round}");
    }
}
