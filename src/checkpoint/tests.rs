//! Tests of the checkpoint reader: real `torch.save` files (tests/fixtures/checkpoint, made
//! by scripts/checkpoint_fixtures.py) and hand-built hostile ones, none of which may panic.
use super::pickle::{self, PickleError};
use super::*;
use std::io::{Cursor, Write};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/checkpoint")
        .join(name)
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("psyrun-checkpoint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// IEEE half → f64.
fn f16(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let mant = f64::from(h & 0x3ff);
    sign * match exp {
        0 => mant * 2f64.powi(-24),
        31 if mant == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + mant / 1024.0) * 2f64.powi(e - 15),
    }
}

/// The elements of an entry as f64.
fn values(e: &Entry) -> Vec<f64> {
    e.data
        .chunks_exact(e.dtype.size())
        .map(|c| {
            let b2 = || [c[0], c[1]];
            let b4 = || [c[0], c[1], c[2], c[3]];
            let b8 = || c.try_into().unwrap();
            match e.dtype {
                Dtype::F32 => f64::from(f32::from_le_bytes(b4())),
                Dtype::F64 => f64::from_le_bytes(b8()),
                Dtype::F16 => f16(u16::from_le_bytes(b2())),
                Dtype::BF16 => f64::from(f32::from_bits(u32::from(u16::from_le_bytes(b2())) << 16)),
                Dtype::I64 => i64::from_le_bytes(b8()) as f64,
                Dtype::I32 => f64::from(i32::from_le_bytes(b4())),
                Dtype::I16 => f64::from(i16::from_le_bytes(b2())),
                Dtype::I8 => f64::from(c[0] as i8),
                Dtype::U8 | Dtype::Bool => f64::from(c[0]),
            }
        })
        .collect()
}

/// Compares a state dict with the JSON list written by the fixtures script.
fn assert_matches_json(sd: &StateDict, json_file: &str) {
    let text = std::fs::read_to_string(fixture(json_file)).unwrap();
    let want: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = sd.entries.iter().map(|e| e.key.as_str()).collect();
    let want_keys: Vec<&str> = want.iter().map(|w| w["key"].as_str().unwrap()).collect();
    assert_eq!(keys, want_keys, "{json_file}: keys in order");
    for (e, w) in sd.entries.iter().zip(&want) {
        assert_eq!(e.dtype.name(), w["dtype"].as_str().unwrap(), "{}", e.key);
        let shape: Vec<usize> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(e.shape, shape, "{}", e.key);
        assert_eq!(
            e.data.len(),
            shape.iter().product::<usize>() * e.dtype.size()
        );
        let want_values: Vec<f64> = w["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        // (serde_json's float parsing may be off by an ulp of f64.)
        let got = values(e);
        assert_eq!(got.len(), want_values.len(), "{}", e.key);
        for (g, w) in got.iter().zip(&want_values) {
            assert!(
                (g - w).abs() <= 1e-15 * w.abs(),
                "{}: {got:?} vs {want_values:?}",
                e.key
            );
        }
    }
}

#[test]
fn reads_every_dtype_and_view_of_a_torch_save_file() {
    for file in ["mixed.pth", "protocol4.pth", "legacy.pth"] {
        let sd = read_state_dict(&fixture(file)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sd.nested_under, None);
        assert_eq!(sd.stripped_prefix, None);
        assert_matches_json(&sd, "mixed.json");
    }
    // Five views of two storages: `Checkpoint` reads each view's range only.
    let ck = Checkpoint::open(&fixture("mixed.pth")).unwrap();
    let t = |k: &str| ck.tensors().iter().find(|t| t.key == k).unwrap().clone();
    assert_eq!(t("view.base").storage, t("view.columns").storage);
    assert_eq!(t("view.row").offset, 4);
    assert!(!t("view.transposed").is_contiguous());
    assert!(t("view.row").is_contiguous());
    assert_eq!(t("view.expanded").strides, [0, 1]);
    assert_eq!(t("scalar").shape, Vec::<usize>::new());
}

#[test]
fn finds_nested_state_dicts_and_strips_data_parallel_prefixes() {
    let sd = read_state_dict(&fixture("nested.pth")).unwrap();
    assert_eq!(sd.nested_under.as_deref(), Some("state_dict"));
    assert_eq!(sd.stripped_prefix.as_deref(), Some("module."));
    assert_matches_json(&sd, "nested.json");

    let sd = read_state_dict(&fixture("deep.pt")).unwrap();
    assert_eq!(sd.nested_under.as_deref(), Some("model.state_dict"));
    assert_eq!(sd.stripped_prefix, None);
    assert_matches_json(&sd, "nested.json");

    let e = read_state_dict(&fixture("no_tensors.pth")).unwrap_err();
    assert!(matches!(e, CheckpointError::NoTensors { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("no_tensors.pth: no tensors found"), "{msg}");
    assert!(msg.contains("`epoch` (the number 3)"), "{msg}");
    assert!(msg.contains("`optimizer` (a dict)"), "{msg}");
}

#[test]
fn refuses_code_and_other_formats_with_clear_messages() {
    let e = read_state_dict(&fixture("malicious.pth")).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Forbidden { name, .. } if name == "posix.system"),
        "{e}"
    );
    assert!(e.to_string().ends_with(
        "malicious.pth: refusing to load `posix.system`: a checkpoint may only hold tensors"
    ));
    assert!(e.help().contains("model.state_dict()"));

    let e = read_state_dict(&fixture("whole_model.pth")).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Forbidden { name, .. } if name == "torch.nn.modules.linear.Linear"),
        "{e}"
    );
    // The tar format of PyTorch 0.1.
    let mut tar = vec![0u8; 1024];
    tar[257..262].copy_from_slice(b"ustar");
    let p = temp("old.tar");
    std::fs::write(&p, &tar).unwrap();
    let e = read_state_dict(&p).unwrap_err();
    assert!(matches!(e, CheckpointError::Legacy { .. }), "{e}");
    assert!(e.to_string().contains("first PyTorch versions"), "{e}");
    assert!(e.help().contains("torch.save(torch.load("), "{}", e.help());
    let e = read_state_dict(&fixture("absent.pth")).unwrap_err();
    assert!(matches!(e, CheckpointError::Io { .. }), "{e}");
    assert!(e.to_string().contains("absent.pth"), "{e}");
    assert_eq!(e.path(), fixture("absent.pth"));

    // Not zip archives.
    for (name, bytes, what) in [
        ("empty.pth", &b""[..], "empty"),
        ("text.pth", b"hello, world", "neither a zip archive"),
        ("pickle.pth", b"\x80\x04N.", "not one written by torch.save"),
        ("st.pth", b"\x02\0\0\0\0\0\0\0{}", ".safetensors"),
        ("pk.pth", b"PK\x03\x04", "not a readable zip archive"),
    ] {
        let p = temp(name);
        std::fs::write(&p, bytes).unwrap();
        let e = read_state_dict(&p).unwrap_err();
        assert!(e.to_string().contains(what), "{name}: {e}");
    }
}

#[test]
fn truncated_and_corrupted_files_give_errors_never_panics() {
    let good = std::fs::read(fixture("mixed.pth")).unwrap();
    let p = temp("cut.pth");
    let mut outcomes = [0usize; 2];
    for len in (0..good.len()).step_by(7) {
        std::fs::write(&p, &good[..len]).unwrap();
        assert!(read_state_dict(&p).is_err(), "truncated to {len} bytes");
    }
    // Flipped bytes: anything may happen but a panic or an absurd allocation.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..1500 {
        let mut bad = good.clone();
        for _ in 0..1 + next() % 3 {
            let i = (next() % bad.len() as u64) as usize;
            bad[i] ^= 1 << (next() % 8);
        }
        std::fs::write(&p, &bad).unwrap();
        outcomes[usize::from(read_state_dict(&p).is_ok())] += 1;
    }
    eprintln!(
        "corrupted files: {} errors, {} read",
        outcomes[0], outcomes[1]
    );
    assert!(outcomes[0] > 100);
}

// ---------------------------------------------------------------------------------------------
// Hand-built pickles and archives.

/// A pickle under construction (protocol 2).
struct P(Vec<u8>);

impl P {
    fn new() -> P {
        P(vec![0x80, 2])
    }
    fn op(mut self, bytes: &[u8]) -> P {
        self.0.extend_from_slice(bytes);
        self
    }
    fn global(self, module: &str, name: &str) -> P {
        self.op(format!("c{module}\n{name}\n").as_bytes())
    }
    fn str(self, s: &str) -> P {
        let n = (s.len() as u32).to_le_bytes();
        self.op(b"X").op(&n).op(s.as_bytes())
    }
    fn int(self, i: u64) -> P {
        self.op(&[0x8a, 8]).op(&i.to_le_bytes())
    }
    fn tuple(mut self, items: &[u64]) -> P {
        self = self.op(b"(");
        for &i in items {
            self = self.int(i);
        }
        self.op(b"t")
    }
    /// `key: _rebuild_tensor_v2(storage(ty, "0", size), offset, shape, strides, False, OrderedDict())`
    /// onto the dict on top of the stack.
    fn tensor(
        self,
        key: &str,
        ty: &str,
        size: u64,
        offset: u64,
        shape: &[u64],
        strides: &[u64],
    ) -> P {
        self.str(key)
            .global("torch._utils", "_rebuild_tensor_v2")
            .op(b"((")
            .str("storage")
            .global("torch", ty)
            .str("0")
            .str("cpu")
            .int(size)
            .op(b"tQ")
            .int(offset)
            .tuple(shape)
            .tuple(strides)
            .op(&[0x89])
            .global("collections", "OrderedDict")
            .op(b")R")
            .op(b"tRs")
    }
    fn done(self) -> Vec<u8> {
        self.op(b".").0
    }
}

/// A zip archive `archive/data.pkl` + records, written to a temp file.
fn archive(name: &str, pkl: &[u8], records: &[(&str, &[u8], CompressionMethod)]) -> PathBuf {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    w.start_file("archive/data.pkl", stored).unwrap();
    w.write_all(pkl).unwrap();
    for (n, data, method) in records {
        w.start_file(
            format!("archive/{n}"),
            SimpleFileOptions::default().compression_method(*method),
        )
        .unwrap();
        w.write_all(data).unwrap();
    }
    let bytes = w.finish().unwrap().into_inner();
    let p = temp(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn floats(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

const STORED: CompressionMethod = CompressionMethod::Stored;

#[test]
fn hand_built_archive_reads_and_compressed_records_work_too() {
    let data = floats(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let pkl = P::new()
        .op(b"}")
        .tensor("a", "FloatStorage", 6, 0, &[2, 3], &[3, 1])
        .tensor("at", "FloatStorage", 6, 0, &[3, 2], &[1, 3])
        .tensor("tail", "FloatStorage", 6, 4, &[2], &[1])
        .done();
    for method in [STORED, CompressionMethod::Deflated] {
        let p = archive(
            "ok.pth",
            &pkl,
            &[("data/0", &data, method), ("byteorder", b"little", STORED)],
        );
        let sd = read_state_dict(&p).unwrap();
        let v: Vec<Vec<f64>> = sd.entries.iter().map(values).collect();
        assert_eq!(v[0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(v[1], [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(v[2], [5.0, 6.0]);
    }
    let p = archive(
        "big_endian.pth",
        &pkl,
        &[("data/0", &data, STORED), ("byteorder", b"big", STORED)],
    );
    let e = read_state_dict(&p).unwrap_err();
    assert!(matches!(e, CheckpointError::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("little-endian"), "{e}");
}

#[test]
fn a_global_outside_the_list_is_refused_and_never_run() {
    // os.system("touch …"), as a plain pickle would run it.
    let marker = temp("was-run");
    let _ = std::fs::remove_file(&marker);
    let pkl = P::new()
        .global("os", "system")
        .str(&format!("touch {}", marker.display()))
        .op(&[0x85])
        .op(b"R")
        .done();
    let p = archive("os_system.pth", &pkl, &[]);
    let e = read_state_dict(&p).unwrap_err();
    assert!(
        e.to_string().ends_with(
            "os_system.pth: refusing to load `os.system`: a checkpoint may only hold tensors"
        ),
        "{e}"
    );
    assert!(!marker.exists());
    // STACK_GLOBAL (protocol 4) the same.
    let pkl = P::new().str("builtins").str("eval").op(&[0x93]).done();
    assert_eq!(
        pickle::unpickle(&pkl).unwrap_err(),
        PickleError::Forbidden("builtins.eval".into())
    );
    // torch.* names outside the list too.
    for (m, n) in [
        ("torch", "load"),
        ("torch._utils", "_rebuild_qtensor"),
        ("collections", "defaultdict"),
    ] {
        let pkl = P::new().global(m, n).done();
        assert_eq!(
            pickle::unpickle(&pkl).unwrap_err(),
            PickleError::Forbidden(format!("{m}.{n}"))
        );
    }
}

fn malformed(pkl: &[u8], records: &[(&str, &[u8], CompressionMethod)]) -> String {
    let p = archive("bad.pth", pkl, records);
    match read_state_dict(&p) {
        Ok(sd) => panic!("read: {sd:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn sizes_offsets_and_strides_must_fit_the_file() {
    let four = floats(&[1.0; 4]);
    let rec = |d: &'static [u8]| [("data/0", d, STORED)];
    let four: &'static [u8] = four.leak();
    let cases: [(&str, Vec<u8>); 7] = [
        (
            "claims",
            P::new()
                .op(b"}")
                .tensor("w", "FloatStorage", 1 << 60, 0, &[4], &[1])
                .done(),
        ),
        (
            "overflows",
            P::new()
                .op(b"}")
                .tensor("w", "FloatStorage", u64::MAX / 2, 0, &[4], &[1])
                .done(),
        ),
        (
            "runs past its storage",
            P::new()
                .op(b"}")
                .tensor("w", "FloatStorage", 4, 1, &[4], &[1])
                .done(),
        ),
        (
            "runs past its storage",
            P::new()
                .op(b"}")
                .tensor("w", "FloatStorage", 4, 0, &[2, 2], &[3, 1])
                .done(),
        ),
        (
            "overflow",
            P::new()
                .op(b"}")
                .tensor(
                    "w",
                    "FloatStorage",
                    4,
                    0,
                    &[1 << 40, 1 << 40],
                    &[1 << 40, 1],
                )
                .done(),
        ),
        (
            // An expanded view of 2^40 elements on a 4-element storage.
            "would take",
            P::new()
                .op(b"}")
                .tensor("w", "FloatStorage", 4, 0, &[1 << 40], &[0])
                .done(),
        ),
        (
            "missing",
            P::new()
                .op(b"}")
                .tensor("w", "FloatStorage", 4, 0, &[4], &[1])
                .done(),
        ),
    ];
    for (i, (want, pkl)) in cases.iter().enumerate() {
        let r = rec(four);
        let recs = if i == 6 { &r[..0] } else { &r[..] };
        let msg = malformed(pkl, recs);
        assert!(msg.contains(want), "case {i}: {msg}");
        assert!(msg.contains("tensor `w`") || i >= 5, "case {i}: {msg}");
    }
}

#[test]
fn hostile_pickles_fail_cleanly() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "without STOP"),
        (b".".to_vec(), "underflow"),
        (P::new().op(b"X\xff\xff\xff\xff").done(), "truncated"),
        (
            P::new().op(&[0x8d]).op(&u64::MAX.to_le_bytes()).done(),
            "truncated",
        ),
        (
            P::new().op(b"j\xff\xff\xff\xff").done(),
            "memo entry 4294967295 is not set",
        ),
        (
            P::new().op(b"N").op(b"r\xff\xff\xff\xff").op(b"0").done(),
            "underflow",
        ),
        (P::new().op(b"(((").done(), "underflow"),
        (P::new().op(b"(Nt0t").done(), "no MARK"),
        (P::new().op(b"(N(R").done(), "underflow"),
        (P::new().op(b"NNNs").done(), "expected a container"),
        (P::new().op(b"}Na").done(), "APPEND to something"),
        (P::new().op(b"}u").done(), "no MARK"),
        (P::new().op(b"](NNu").done(), "SETITEM on something"),
        (P::new().op(b"}(Nu").done(), "odd number"),
        (P::new().op(b"N)R").done(), "not an allowed function"),
        (P::new().op(&[0x80, 9]).done(), "protocol 9"),
        (P::new().op(b"I1\n").done(), "opcode 0x49"),
        (P::new().op(b"cos").done(), "newline"),
        (P::new().op(&[0x82, 1]).done(), "extension-registry"),
        (P::new().op(b"NQ").done(), "persistent id must be a tuple"),
        (
            P::new()
                .global("collections", "OrderedDict")
                .op(b"(Nt")
                .op(b"R")
                .done(),
            "of something not a list",
        ),
        (
            P::new()
                .global("collections", "OrderedDict")
                .op(b"(](NNNlet")
                .op(b"R")
                .done(),
            "opcode 0x6c",
        ),
        (
            P::new()
                .global("collections", "OrderedDict")
                .op(b"(](Net")
                .op(b"R")
                .done(),
            "must be a pair",
        ),
        (
            P::new().global("torch", "FloatStorage").op(b")R").done(),
            "cannot be called",
        ),
        (
            P::new()
                .global("torch._utils", "_rebuild_tensor_v2")
                .op(b"(NNNNNNt")
                .op(b"R")
                .done(),
            "without a storage",
        ),
        (
            P::new()
                .global("torch._utils", "_rebuild_parameter")
                .op(b"(NNNt")
                .op(b"R")
                .done(),
            "not a tensor",
        ),
    ];
    for (i, (pkl, want)) in cases.iter().enumerate() {
        match pickle::unpickle(pkl) {
            Err(PickleError::Malformed(m) | PickleError::Truncated(m)) => {
                assert!(m.contains(want), "case {i}: {m}")
            }
            other => panic!("case {i}: {other:?}"),
        }
    }
    // Deep nesting is no recursion: a million MARKs, then nothing.
    let mut deep = P::new();
    for _ in 0..1_000_000 {
        deep = deep.op(b"(");
    }
    assert!(pickle::unpickle(&deep.0).is_err());
    // A list holding itself, a dict holding a tuple of itself: fine, nothing recurses.
    let pkl = P::new()
        .op(b"}q\x00")
        .str("loop")
        .op(b"]q\x01h\x01a")
        .op(b"s")
        .str("self")
        .op(b"h\x00\x85s")
        .done();
    let u = pickle::unpickle(&pkl).unwrap();
    assert!(matches!(u.object(&u.root), Some(pickle::Object::Dict(_))));
    let p = archive("loops.pth", &pkl, &[]);
    let e = read_state_dict(&p).unwrap_err();
    assert!(
        e.to_string().contains("`loop` (a list), `self` (a tuple)"),
        "{e}"
    );
    // Memo amplification: one big tuple referenced a thousand times costs no copies.
    let mut amp = P::new().op(b"(");
    for _ in 0..10_000 {
        amp = amp.op(b"N");
    }
    amp = amp.op(b"tq\x00]");
    for _ in 0..1000 {
        amp = amp.op(b"h\x00a");
    }
    assert!(pickle::unpickle(&amp.done()).is_ok());
    // The same with OrderedDict(items): each use copies, so copies are rationed.
    let mut amp = P::new().global("collections", "OrderedDict").op(b"q\x01](");
    for i in 0..5_000u64 {
        amp = amp.op(b"(").int(i).op(b"N").op(b"t");
    }
    amp = amp.op(b"e\x85q\x00]");
    for _ in 0..1000 {
        amp = amp.op(b"h\x01h\x00Ra");
    }
    match pickle::unpickle(&amp.done()) {
        Err(PickleError::Malformed(m)) => assert!(m.contains("used too often"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unsupported_dtypes_and_rebuild_v3() {
    // _rebuild_tensor_v3 of an untyped storage: read when the dtype is one psyrun knows.
    let v3 = |dtype: &str| {
        P::new()
            .op(b"}")
            .str("w")
            .global("torch._utils", "_rebuild_tensor_v3")
            .op(b"((")
            .str("storage")
            .global("torch", "UntypedStorage")
            .str("0")
            .str("cpu")
            .int(8)
            .op(b"tQ")
            .int(0)
            .tuple(&[2])
            .tuple(&[1])
            .op(&[0x89])
            .op(b"}")
            .global("torch", dtype)
            .op(b"tRs")
            .done()
    };
    let data = floats(&[1.5, -2.0]);
    let p = archive("v3.pth", &v3("float32"), &[("data/0", &data, STORED)]);
    let sd = read_state_dict(&p).unwrap();
    assert_eq!(values(&sd.entries[0]), [1.5, -2.0]);
    let p = archive("v3u16.pth", &v3("uint16"), &[("data/0", &data, STORED)]);
    let e = read_state_dict(&p).unwrap_err();
    assert!(e.to_string().contains("dtype torch.uint16"), "{e}");
    let pkl = P::new()
        .op(b"}")
        .tensor("c", "ComplexFloatStorage", 1, 0, &[1], &[1])
        .done();
    let p = archive("complex.pth", &pkl, &[("data/0", &data, STORED)]);
    let e = read_state_dict(&p).unwrap_err();
    assert!(e.to_string().contains("torch.ComplexFloatStorage"), "{e}");
}

#[test]
fn top_level_tensors_win_and_partial_prefixes_stay() {
    let data = floats(&[1.0]);
    // Tensors at the top level and a nested `state_dict`: the top level is the state dict.
    let pkl = P::new()
        .op(b"}")
        .tensor("module.a", "FloatStorage", 1, 0, &[], &[])
        .tensor("b", "FloatStorage", 1, 0, &[1], &[1])
        .str("state_dict")
        .op(b"}")
        .tensor("x", "FloatStorage", 1, 0, &[], &[])
        .op(b"s")
        .done();
    let p = archive("top.pth", &pkl, &[("data/0", &data, STORED)]);
    let sd = read_state_dict(&p).unwrap();
    let keys: Vec<&str> = sd.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["module.a", "b"]);
    assert_eq!(sd.stripped_prefix, None);
    // Not a dict at all.
    let p = archive("list.pth", &P::new().op(b"]").done(), &[]);
    let e = read_state_dict(&p).unwrap_err();
    assert!(e.to_string().contains("holds a list, not a dict"), "{e}");
    let p = archive("int.pth", &P::new().op(b"K\x07").done(), &[]);
    let e = read_state_dict(&p).unwrap_err();
    assert!(e.to_string().contains("the number 7, not a dict"), "{e}");
}

#[test]
fn gather_follows_strides() {
    let src: Vec<u8> = (0u8..12).collect();
    // A 3x4 matrix of bytes, transposed.
    let t = gather(&src, 1, &[4, 3], &[1, 4]).unwrap();
    assert_eq!(t, [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    // Two-byte elements, every other column.
    let t = gather(&src, 2, &[2, 2], &[3, 2]).unwrap();
    assert_eq!(t, [0, 1, 4, 5, 6, 7, 10, 11]);
    assert_eq!(gather(&src, 4, &[4], &[1]), None);
    assert_eq!(gather(&src, 1, &[0, 5], &[5, 1]).unwrap(), Vec::<u8>::new());
}

/// A legacy (PyTorch < 1.6) file: magic number, version, system info, `main`, the storage
/// keys, then each storage as an 8-byte element count and its bytes.
fn legacy_file(
    name: &str,
    main: &[u8],
    little_endian: bool,
    storages: &[(&str, u64, &[u8])],
) -> PathBuf {
    let mut out = P::new()
        .op(&[0x8a, 0x0a])
        .op(&[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19])
        .done();
    out.extend(P::new().op(b"M\xe9\x03").done());
    out.extend(
        P::new()
            .op(b"}")
            .str("little_endian")
            .op(if little_endian { &[0x88] } else { &[0x89] })
            .op(b"s")
            .done(),
    );
    out.extend_from_slice(main);
    let mut keys = P::new().op(b"](");
    for (k, _, _) in storages {
        keys = keys.str(k);
    }
    out.extend(keys.op(b"e").done());
    for (_, numel, data) in storages {
        out.extend_from_slice(&numel.to_le_bytes());
        out.extend_from_slice(data);
    }
    let p = temp(name);
    std::fs::write(&p, out).unwrap();
    p
}

#[test]
fn legacy_files_of_python_2_and_pytorch_0_3_read() {
    // PyTorch 0.3 under Python 2: `OrderedDict([[key, value], …])`, `_rebuild_tensor`
    // (4 arguments), byte-string keys, a storage id with a sixth field (None).
    let rebuild = |p: P, key: &str, shape: &[u64], strides: &[u64]| {
        p.op(b"](")
            .op(&[b'U', key.len() as u8])
            .op(key.as_bytes())
            .global("torch._utils", "_rebuild_tensor")
            .op(b"((")
            .op(b"U\x07storage")
            .global("torch", "FloatStorage")
            .op(b"U\x0894010000U\x03cpu")
            .int(6)
            .op(b"NtQ")
            .int(0)
            .tuple(shape)
            .tuple(strides)
            .op(b"tRe")
    };
    let mut main = P::new()
        .global("collections", "OrderedDict")
        .op(b"(]q\x00(");
    main = rebuild(main, "w", &[2, 3], &[3, 1]);
    main = rebuild(main, "w.t", &[3, 2], &[1, 3]);
    let main = main.op(b"etR").done();
    let data = floats(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let p = legacy_file("py2.pth", &main, true, &[("94010000", 6, &data)]);
    let sd = read_state_dict(&p).unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<&str> = sd.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["w", "w.t"]);
    assert_eq!(values(&sd.entries[1]), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);

    // Big-endian, truncated, or a storage too short for its count: errors.
    let p = legacy_file("be.pth", &main, false, &[("94010000", 6, &data)]);
    assert!(read_state_dict(&p)
        .unwrap_err()
        .to_string()
        .contains("big-endian"));
    let p = legacy_file("short.pth", &main, true, &[("94010000", 7, &data)]);
    let e = read_state_dict(&p).unwrap_err();
    assert!(
        e.to_string().contains("runs past the end of the file"),
        "{e}"
    );
    let p = legacy_file("other.pth", &main, true, &[("1234", 6, &data)]);
    let e = read_state_dict(&p).unwrap_err();
    assert!(e.to_string().contains("listed but never used"), "{e}");
    let whole = std::fs::read(fixture("legacy.pth")).unwrap();
    let cut = temp("legacy_cut.pth");
    for len in (0..whole.len()).step_by(11) {
        std::fs::write(&cut, &whole[..len]).unwrap();
        assert!(read_state_dict(&cut).is_err(), "truncated to {len} bytes");
    }
}

#[test]
fn special_files_are_refused_before_opening() {
    // A FIFO without a writer would block `open` forever; /dev/zero never ends.
    let fifo = temp("w-fifo.pth");
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let Err(e) = Checkpoint::open(&fifo) else {
            panic!("a FIFO is refused")
        };
        assert!(
            e.to_string()
                .contains("is a FIFO (named pipe), not a regular file"),
            "{e}"
        );
        let e = kind::file_kind(&fifo).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }
    let Err(e) = Checkpoint::open(Path::new("/dev/zero")) else {
        panic!("a device is refused")
    };
    assert!(e.to_string().contains("a character device"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// TorchScript archives read as weights (scripts/checkpoint_fixtures.py scripted).

#[test]
fn torchscript_archives_give_their_modules_state_dict() {
    // Scripted: keys in state_dict() order (parameters, buffers, then submodules), the plain
    // tensor attribute `attn_mask` and MultiheadAttention's None parameters left out.
    let sd = read_state_dict(&fixture("scripted.pt")).unwrap_or_else(|e| panic!("{e}"));
    assert_matches_json(&sd, "scripted.json");
    assert!(sd.entries.iter().all(|e| !e.key.ends_with("attn_mask")));
    assert!(Checkpoint::open(&fixture("scripted.pt"))
        .unwrap()
        .is_torchscript());
    assert!(!Checkpoint::open(&fixture("mixed.pth"))
        .unwrap()
        .is_torchscript());
    // Traced and converted to float16 (as OpenAI's CLIP files): mangled class names.
    let sd = read_state_dict(&fixture("traced_half.pt")).unwrap_or_else(|e| panic!("{e}"));
    assert!(sd
        .entries
        .iter()
        .all(|e| e.key.ends_with("num_batches_tracked") || e.dtype == Dtype::F16));
    assert_matches_json(&sd, "traced_half.json");
    // A scripted nn.Linear.
    let sd = read_state_dict(&fixture("torchscript.pt")).unwrap();
    let keys: Vec<&str> = sd.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["weight", "bias"]);
    assert_eq!(sd.entries[0].shape, [2, 2]);
}

/// `scripted.pt` rewritten: every record passed through `edit` (`None` drops it).
fn edited_script(name: &str, edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>) -> PathBuf {
    let mut zip = ZipArchive::new(File::open(fixture("scripted.pt")).unwrap()).unwrap();
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let n = f.name().unwrap().into_owned();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        if let Some(data) = edit(&n, data) {
            w.start_file(n, stored).unwrap();
            w.write_all(&data).unwrap();
        }
    }
    let p = temp(name);
    std::fs::write(&p, w.finish().unwrap().into_inner()).unwrap();
    p
}

#[test]
fn damaged_or_hostile_torchscript_archives_give_typed_errors() {
    let good = std::fs::read(fixture("scripted.pt")).unwrap();
    let p = temp("cut.pt");
    for len in (0..good.len()).step_by(97) {
        std::fs::write(&p, &good[..len]).unwrap();
        assert!(read_state_dict(&p).is_err(), "truncated to {len} bytes");
    }
    // A storage record missing.
    let p = edited_script("no_storage.pt", |n, d| {
        (!n.ends_with("/data/3")).then_some(d)
    });
    let e = read_state_dict(&p).unwrap_err();
    assert!(matches!(e, CheckpointError::Malformed { .. }), "{e}");
    assert!(e.to_string().contains("data/3"), "{e}");
    // A forbidden global inside the module tree: refused, not run.
    let p = edited_script("evil.pt", |n, d| {
        Some(if n.ends_with("/data.pkl") {
            let at = d
                .windows(22)
                .position(|w| w == b"torch._utils\n_rebuild_")
                .unwrap();
            let mut d = d;
            d[at..at + 22].copy_from_slice(b"posix\nsystem\n\n\n\n\n\n\n\n\n\n");
            d
        } else {
            d
        })
    });
    let e = read_state_dict(&p).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Forbidden { name, .. } if name == "posix.system"),
        "{e}"
    );
    // Without its code, every tensor attribute counts (the plain `attn_mask` too).
    let p = edited_script("no_code.pt", |n, d| (!n.contains("/code/")).then_some(d));
    let sd = read_state_dict(&p).unwrap();
    assert!(sd.entries.iter().any(|e| e.key == "blocks.0.attn_mask"));
    assert!(sd
        .entries
        .iter()
        .any(|e| e.key == "blocks.1.mlp.c_proj.bias"));
    // Code that is not text.
    let p = edited_script("binary_code.pt", |n, d| {
        Some(if n.ends_with("code/__torch__.py") {
            vec![0xff, 0xfe]
        } else {
            d
        })
    });
    let e = read_state_dict(&p).unwrap_err();
    assert!(e.to_string().contains("not UTF-8"), "{e}");
    // The archive's classes are names only in TorchScript archives: a torch.save file that
    // names one is refused as any other global.
    let pkl = P::new()
        .global("__torch__.model", "Net")
        .op(b")\x81")
        .done();
    let p = archive("torch_class.pth", &pkl, &[]);
    let e = read_state_dict(&p).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Forbidden { name, .. } if name == "__torch__.model.Net"),
        "{e}"
    );
}

/// A TorchScript archive (`code/` present) holding `pkl` as its data.pkl.
fn script_archive(name: &str, pkl: &[u8], code: &str) -> PathBuf {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    w.start_file("archive/data.pkl", stored).unwrap();
    w.write_all(pkl).unwrap();
    w.start_file("archive/code/__torch__.py", stored).unwrap();
    w.write_all(code.as_bytes()).unwrap();
    w.start_file("archive/data/0", stored).unwrap();
    w.write_all(&floats(&[1.0, 2.0])).unwrap();
    let p = temp(name);
    std::fs::write(&p, w.finish().unwrap().into_inner()).unwrap();
    p
}

#[test]
fn hand_built_module_trees_are_walked_safely() {
    let code = "class M(Module):\n  __parameters__ = [\"w\", ]\n  __buffers__ = []\n";
    // A module whose attribute `w` is a tensor and `sub` another module.
    let module = |p: P| p.global("__torch__", "M").op(b")\x81}");
    let pkl = module(P::new())
        .tensor("w", "FloatStorage", 2, 0, &[2], &[1])
        .str("sub");
    let pkl = module(pkl)
        .tensor("w", "FloatStorage", 2, 0, &[2], &[1])
        .op(b"b")
        .op(b"s")
        .op(b"b")
        .done();
    let sd = read_state_dict(&script_archive("tree.pt", &pkl, code)).unwrap();
    let keys: Vec<&str> = sd.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["w", "sub.w"]);
    // A module containing itself (memo): the walk stops, with an error.
    let pkl = P::new()
        .global("__torch__", "M")
        .op(b")\x81q\x00}")
        .tensor("w", "FloatStorage", 2, 0, &[2], &[1])
        .str("me")
        .op(b"h\x00sb")
        .done();
    let e = read_state_dict(&script_archive("cycle.pt", &pkl, code)).unwrap_err();
    assert!(matches!(e, CheckpointError::Malformed { .. }), "{e}");
    // A module whose state is not a dict (a custom __setstate__).
    let pkl = module(P::new()).op(b"b").done();
    let pkl = {
        let mut v = pkl;
        // `}` replaced by an empty tuple as the state.
        let at = v.iter().position(|&b| b == b'}').unwrap();
        v[at] = b')';
        v
    };
    let e = read_state_dict(&script_archive("setstate.pt", &pkl, code)).unwrap_err();
    assert!(matches!(e, CheckpointError::Unsupported { .. }), "{e}");
    // A declared parameter that is no tensor.
    let pkl = module(P::new()).str("w").int(3).op(b"sb").done();
    let e = read_state_dict(&script_archive("not_tensor.pt", &pkl, code)).unwrap_err();
    assert!(e.to_string().contains("no tensor"), "{e}");
    // No parameters at all.
    let pkl = module(P::new()).op(b"b").done();
    let e = read_state_dict(&script_archive("empty.pt", &pkl, code)).unwrap_err();
    assert!(matches!(e, CheckpointError::NoTensors { .. }), "{e}");
    // The root must be a module.
    let pkl = P::new().op(b"}").done();
    let e = read_state_dict(&script_archive("dict.pt", &pkl, code)).unwrap_err();
    assert!(e.to_string().contains("not a TorchScript module"), "{e}");
}
