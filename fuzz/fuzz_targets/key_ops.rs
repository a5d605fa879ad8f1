//! swimnet's cluster-wide key-operation messages (`swimnet_core::key_ops`):
//! whatever decodes encodes back to bytes that decode to the same request,
//! or, for answers, decode again within the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swimnet_core::key_ops::{decode, encode_answer, encode_request, KeyOpMessage, MAX_KEYS_LISTED};

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        None => {}
        Some(KeyOpMessage::Request { id, op }) => {
            let again = decode(&encode_request(id, &op));
            assert_eq!(again, Some(KeyOpMessage::Request { id, op }));
        }
        Some(KeyOpMessage::Answer { id, answer }) => {
            assert!(answer.keys.len() <= MAX_KEYS_LISTED);
            let again = decode(&encode_answer(id, &answer)).expect("our own encoding decodes");
            let KeyOpMessage::Answer { answer: a2, .. } = again else {
                panic!("an answer decoded as a request");
            };
            assert_eq!(a2.keys, answer.keys);
        }
    }
});
