//! `interp::etf::decode` reads stored state back into values for Python from
//! bytes that should be external term format; whatever the bytes, it must answer
//! `Ok` or `Err`, never panic, crash or run away with memory. proptest feeds it random
//! bytes and random mutations of valid encodings (fixed seed, so a failure
//! reproduces; proptest prints the minimal failing input).

// The decoder is compiled here on its own (the library links rustler's NIF
// symbols, which only a BEAM provides), with the two neighbours it uses.
#[allow(dead_code)]
#[path = "../src/interp/conv_error.rs"]
mod conv_error;
#[path = "../src/interp/etf.rs"]
mod etf;
#[allow(dead_code)]
#[path = "../src/interp/value.rs"]
mod value;
use num_bigint::BigInt;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use value::Value;

/// Valid encodings of every tag the decoder knows, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    vec![
        vec![131, 97, 7],                              // small int
        vec![131, 98, 255, 255, 255, 255],             // int
        vec![131, 70, 64, 9, 33, 251, 84, 68, 45, 24], // float
        vec![131, 119, 4, b't', b'r', b'u', b'e'],     // atom true
        vec![131, 118, 0, 2, b'o', b'k'],              // atom ok
        vec![131, 104, 2, 97, 1, 97, 2],               // {1, 2}
        vec![131, 106],                                // []
        vec![131, 107, 0, 3, 1, 2, 3],                 // [1, 2, 3] as string
        vec![131, 108, 0, 0, 0, 2, 97, 1, 97, 2, 106], // [1, 2]
        vec![131, 109, 0, 0, 0, 3, b'a', b'b', b'c'],  // <<"abc">>
        vec![131, 110, 2, 0, 1, 1],                    // small big
        vec![131, 111, 0, 0, 0, 1, 1, 5],              // large big
        vec![131, 116, 0, 0, 0, 1, 97, 1, 97, 2],      // #{1 => 2}
        // {'$bytes', <<1, 2>>}
        vec![131, 104, 2, 119, 6, b'$', b'b', b'y', b't', b'e', b's', 109, 0, 0, 0, 2, 1, 2],
        // a pid
        vec![
            131, 88, 119, 13, b'n', b'o', b'n', b'o', b'd', b'e', b'@', b'n', b'o', b'h', b'o', b's', b't', 0, 0, 0, 80, 0, 0, 0, 0, 0, 0,
            0, 0,
        ],
        vec![131, 77, 0, 0, 0, 1, 3, 160], // bitstring
    ]
}

/// A valid encoding with some bytes overwritten, some inserted and a random cut.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let n = seeds().len();
    (0..n, prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<bool>()), 0..6), any::<prop::sample::Index>()).prop_map(
        |(i, edits, cut)| {
            let mut b = seeds()[i].clone();
            for (at, byte, insert) in edits {
                let at = at.index(b.len()).max(1);
                if insert {
                    b.insert(at, byte);
                } else {
                    b[at] = byte;
                }
            }
            let keep = cut.index(b.len() + 1).max(1);
            if keep < b.len() && keep % 3 == 0 {
                b.truncate(keep);
            }
            b
        },
    )
}

fn runner() -> TestRunner {
    let seed = [7u8; 32];
    eprintln!("etf_fuzz: proptest seed {seed:?}");
    TestRunner::new_with_rng(
        Config { cases: 20_000, failure_persistence: None, ..Config::default() },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
    )
}

#[test]
fn decoding_any_bytes_never_panics() {
    on_nif_stack(decoding_any_bytes);
}

fn decoding_any_bytes() {
    let any_bytes = prop::collection::vec(any::<u8>(), 0..64).prop_map(|mut v| {
        v.insert(0, 131);
        v
    });
    let strategy = prop_oneof![any_bytes, mutated()];
    let ok = std::cell::Cell::new(0u32);
    let err = std::cell::Cell::new(0u32);
    runner()
        .run(&strategy, |bytes| {
            match etf::decode(&bytes) {
                Ok(_) => ok.set(ok.get() + 1),
                Err(_) => err.set(err.get() + 1),
            }
            Ok(())
        })
        .unwrap();
    let (ok, err) = (ok.get(), err.get());
    eprintln!("etf_fuzz: {ok} decoded, {err} refused");
    assert!(ok > 0 && err > 0, "the inputs should reach both outcomes");
}

/// Runs `f` on a thread with the stack every thread of the NIF gets
/// (`RUST_MIN_STACK`, set by `nif::load`), not the test harness's 2 MiB.
fn on_nif_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new().stack_size(16 * 1024 * 1024).spawn(f).unwrap().join().unwrap();
}

#[test]
fn nesting_far_past_the_limit_is_refused() {
    on_nif_stack(nesting_far_past_the_limit);
}

fn nesting_far_past_the_limit() {
    // 100,000 nested one-element lists: refused at the depth limit, no stack overflow.
    let mut bytes = vec![131];
    for _ in 0..100_000 {
        bytes.extend_from_slice(&[108, 0, 0, 0, 1]);
    }
    bytes.push(106);
    match etf::decode(&bytes) {
        Err(conv_error::ConvError::Invalid(m)) => assert!(m.contains("nested deeper"), "{m}"),
        other => panic!("expected the depth error, got {:?}", other.map(|_| ())),
    }
}

/// The valid seeds decode to what the type table says.
#[test]
fn valid_encodings_decode_by_the_type_table() {
    let s = seeds();
    let d = |i: usize| etf::decode(&s[i]).unwrap();
    assert_eq!(d(0), Value::Int(7));
    assert_eq!(d(1), Value::Int(-1));
    assert_eq!(d(2), Value::Float(std::f64::consts::PI));
    assert_eq!(d(3), Value::Bool(true));
    assert_eq!(d(4), Value::Str("ok".into()));
    assert_eq!(d(5), Value::Tuple(vec![Value::Int(1), Value::Int(2)]));
    assert_eq!(d(6), Value::List(vec![]));
    assert_eq!(d(7), Value::List(vec![Value::Int(1), Value::Int(2), Value::Int(3)]));
    assert_eq!(d(9), Value::Str("abc".into()));
    assert_eq!(d(10), Value::Int(257));
    assert_eq!(d(13), Value::Bytes(vec![1, 2]));
    assert!(matches!(d(14), Value::Pid { ref text, .. } if text == "<0.80.0>"));
    assert!(etf::decode(&s[15]).is_err());
    // a big integer beyond 64 bits, negative: 2^64 as LARGE_BIG with sign 1
    let big = etf::decode(&[131, 111, 0, 0, 0, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]).unwrap();
    let two_to_64: BigInt = BigInt::from(1u8) << 64u32;
    assert_eq!(big, Value::BigInt(-two_to_64));
}

/// Values as the frames of process-isolated contexts carry them.
fn values() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (any::<bool>(), prop::collection::vec(any::<u32>(), 3..6)).prop_map(|(neg, digits)| {
            let sign = if neg { num_bigint::Sign::Minus } else { num_bigint::Sign::Plus };
            // beyond 64 bits (what fits decodes as Int)
            Value::BigInt(BigInt::new(sign, digits.into_iter().map(|d| d | 1).collect()))
        }),
        (-1.0e300f64..1.0e300).prop_map(Value::Float),
        ".{0,12}".prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
        (any::<u32>(), any::<u64>()).prop_map(|(key, id)| Value::Ref { key, id, hold: Default::default() }),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Tuple),
            prop::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
        ]
    })
}

#[test]
fn encode_then_decode_gives_the_value_back() {
    runner()
        .run(&values(), |v| {
            let bytes = etf::encode(&v).expect("encodable");
            prop_assert_eq!(etf::decode(&bytes).expect("decodable"), v);
            Ok(())
        })
        .unwrap();
}

/// A request's frame is encoded with its arguments borrowed: byte for byte what
/// the same shape built as a `Value` encodes to.
#[test]
fn borrowed_encodes_as_the_value_of_the_same_shape() {
    let shapes = (
        prop::collection::vec(values(), 0..5),
        prop::collection::vec((".{0,6}", values()), 0..3),
        prop::collection::vec(any::<u8>(), 0..16),
    );
    runner()
        .run(&shapes, |(args, kwargs, code)| {
            use etf::Borrowed as B;
            let inner = Value::Tuple(args.clone());
            let borrowed = B::Tuple(vec![
                B::Str("call"),
                B::Owned(Value::Int(7)),
                B::List(&args),
                B::Named(&kwargs),
                B::Bytes(&code),
                B::Value(&inner),
            ]);
            let value = Value::Tuple(vec![
                Value::Str("call".into()),
                Value::Int(7),
                Value::List(args.clone()),
                Value::Map(kwargs.iter().map(|(k, v)| (Value::Str(k.clone()), v.clone())).collect()),
                Value::Bytes(code.clone()),
                Value::Tuple(args.clone()),
            ]);
            prop_assert_eq!(etf::encode_borrowed(&borrowed).expect("encodable"), etf::encode(&value).expect("encodable"));
            let pairs: Vec<(Value, Value)> = kwargs.iter().map(|(k, v)| (Value::Str(k.clone()), v.clone())).collect();
            prop_assert_eq!(
                etf::encode_borrowed(&B::Map(&pairs)).expect("encodable"),
                etf::encode(&Value::Map(pairs.clone())).expect("encodable")
            );
            Ok(())
        })
        .unwrap();
}
