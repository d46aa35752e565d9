//! GGUF reader tests: the fixtures written by py/make_gguf_fixtures.py (the
//! `gguf` package's own writer, llama.cpp names and layouts), hand-built
//! hostile files, and mutation fuzzing (every failure must be an error, never
//! a panic or an absurd allocation).

mod common;
use common::Rng;
use mamba::format::gguf::{self, value_type as vt, Array, GgufFile, Value};
use mamba::model::{Backing, DType, Model, Tensor};
use mamba::ErrorKind;
use std::sync::Arc;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gguf");

// Dimensions of the fixtures (see py/make_gguf_fixtures.py).
const N_LAYER: usize = 2;
const D_MODEL: usize = 32;
const D_INNER: usize = 40;
const D_STATE: usize = 4;
const D_CONV: usize = 4;
const DT_RANK: usize = 2;
const VOCAB: usize = 37;
const PADDED_VOCAB: usize = 40;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}.gguf")).unwrap()
}

fn expected(stem: &str, tensor: &str) -> Vec<f32> {
    let b = std::fs::read(format!("{DIR}/{stem}.{tensor}.f32")).unwrap();
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Heap backing holding `bytes` (8-aligned; zero-padded to a multiple of 8 bytes).
fn heap(bytes: &[u8]) -> Arc<Backing> {
    let mut v = vec![0u64; bytes.len().div_ceil(8)];
    // SAFETY: v has at least bytes.len() bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr() as *mut u8, bytes.len())
    };
    Arc::new(Backing::Heap(v))
}

fn in_place(t: &Tensor, backing: &Backing) -> bool {
    let b = backing.bytes().as_ptr_range();
    let p = t.bytes().as_ptr();
    b.start <= p && p < b.end
}

fn check_values(stem: &str, m: &Model) {
    let w = &m.weights;
    let cases: [(&str, &Tensor); 4] = [
        ("token_embd.weight", &w.embedding),
        ("blk.1.ssm_x.weight", &w.layers[1].mixer.x_proj),
        ("blk.0.ssm_a", &w.layers[0].mixer.a),
        ("blk.0.attn_norm.weight", &w.layers[0].norm),
    ];
    for (name, t) in cases {
        let want = expected(stem, name);
        let got = t.to_f32_vec();
        assert_eq!(got.len(), want.len(), "{stem} {name}");
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), e.to_bits(), "{stem} {name}[{i}]: {g} vs {e}");
        }
    }
}

fn check_config(m: &Model, vocab: usize, tied: bool) {
    let c = &m.config;
    assert_eq!(
        (c.n_layers, c.d_model, c.d_inner, c.d_state, c.d_conv, c.dt_rank),
        (N_LAYER, D_MODEL, D_INNER, D_STATE, D_CONV, DT_RANK)
    );
    assert_eq!(c.vocab_size, vocab);
    assert_eq!(c.padded_vocab, PADDED_VOCAB);
    assert_eq!(c.norm_eps, 1e-5);
    assert_eq!(c.tied, tied);
    assert_eq!(m.weights.lm_head.is_none(), tied);
}

/// Loads a fixture from a heap copy and from a real memory mapping.
fn load_fixture(stem: &str) -> (Model, Arc<Backing>) {
    let path = format!("{DIR}/{stem}.gguf");
    let mapped = gguf::load_path(&path).unwrap();
    assert_eq!(mapped.file_bytes, fixture(stem).len() as u64);
    let backing = heap(&fixture(stem));
    (gguf::load(&path, backing.clone()).unwrap(), backing)
}

#[test]
fn f32_tied() {
    let bytes = fixture("mamba_f32_tied");
    let f = GgufFile::parse(&bytes).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.data_offset() % 32, 0);
    assert_eq!(gguf::file_type_name(&f), "all F32");
    assert!(f.tensor("output.weight").is_none());
    let (m, backing) = load_fixture("mamba_f32_tied");
    check_config(&m, PADDED_VOCAB, true);
    assert!(m.tokenizer.is_none());
    let w = &m.weights;
    assert_eq!(w.embedding.dtype, DType::F32);
    // Everything is used in place: no copies for an all-f32 file.
    assert!(in_place(&w.embedding, &backing));
    assert!(in_place(&w.layers[1].mixer.a, &backing));
    assert!(in_place(&w.layers[0].mixer.conv_w, &backing));
    assert!(w.layers[0].mixer.in_proj_bias.is_none());
    assert!(w.layers[0].mixer.conv_b.is_some());
    check_values("mamba_f32_tied", &m);
}

#[test]
fn f16_untied_biases_alignment_64() {
    let f = GgufFile::parse(&fixture("mamba_f16_untied")).unwrap();
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_offset() % 64, 0);
    assert!(f.tensors().iter().all(|t| t.offset % 64 == 0));
    assert_eq!(gguf::file_type_name(&f), "mostly F16");
    let (m, backing) = load_fixture("mamba_f16_untied");
    check_config(&m, PADDED_VOCAB, false);
    let w = &m.weights;
    assert_eq!(w.embedding.dtype, DType::F16);
    assert_eq!(w.lm_head.as_ref().unwrap().dtype, DType::F16);
    assert_eq!(w.layers[1].mixer.out_proj.dtype, DType::F16);
    assert!(in_place(&w.layers[1].mixer.out_proj, &backing));
    assert_eq!(
        w.layers[0].mixer.in_proj_bias.as_ref().unwrap().len(),
        2 * D_INNER
    );
    assert_eq!(
        w.layers[1].mixer.out_proj_bias.as_ref().unwrap().len(),
        D_MODEL
    );
    check_values("mamba_f16_untied", &m);
}

#[test]
fn bf16_everything_v2() {
    let f = GgufFile::parse(&fixture("mamba_bf16_v2")).unwrap();
    assert_eq!(f.version(), 2);
    assert_eq!(gguf::file_type_name(&f), "mostly BF16");
    assert_eq!(
        f.tensor("blk.0.ssm_a").unwrap().ggml_type,
        gguf::GGML_TYPE_BF16
    );
    let (m, backing) = load_fixture("mamba_bf16_v2");
    check_config(&m, PADDED_VOCAB, true);
    let w = &m.weights;
    assert_eq!(w.embedding.dtype, DType::BF16);
    assert!(in_place(&w.embedding, &backing));
    // Tensors the model needs as f32 were converted (copies on the heap).
    let mx = &w.layers[0].mixer;
    for t in [
        &w.layers[0].norm,
        &mx.conv_w,
        &mx.a,
        &mx.d,
        &mx.dt_bias,
        &w.norm_f,
    ] {
        assert_eq!(t.dtype, DType::F32);
        assert!(!in_place(t, &backing));
    }
    check_values("mamba_bf16_v2", &m);
}

#[test]
fn q8_0_with_tokenizer() {
    let bytes = fixture("mamba_q8_0_tok");
    let f = GgufFile::parse(&bytes).unwrap();
    assert_eq!(gguf::file_type_name(&f), "mostly Q8_0");
    // Q8_0 where rows are whole blocks, F32 elsewhere (as llama.cpp does).
    assert_eq!(
        f.tensor("token_embd.weight").unwrap().ggml_type,
        gguf::GGML_TYPE_Q8_0
    );
    assert_eq!(
        f.tensor("blk.0.ssm_in.weight").unwrap().ggml_type,
        gguf::GGML_TYPE_Q8_0
    );
    assert_eq!(
        f.tensor("blk.0.ssm_x.weight").unwrap().ggml_type,
        gguf::GGML_TYPE_F32
    );

    let v = gguf::vocab(&f).unwrap().expect("vocab");
    assert_eq!(v.model, "gpt2");
    assert_eq!(v.tokens.len(), PADDED_VOCAB);
    assert_eq!(v.tokens[0], "<|endoftext|>");
    assert_eq!(v.tokens[29], "Ġt");
    assert_eq!(v.tokens[39], "[PAD39]");
    assert_eq!(v.token_types.len(), PADDED_VOCAB);
    assert_eq!(&v.token_types[..3], &[3, 3, 1]);
    assert_eq!(v.merges.len(), 6);
    assert_eq!(v.merges[0], "Ġ t");
    assert_eq!((v.bos_id, v.eos_id), (Some(0), Some(0)));

    // The model itself, built without the tokenizer step.
    let backing = heap(&bytes);
    let c = gguf::lm_config(&f).unwrap();
    assert_eq!(c.vocab_size, VOCAB, "[PAD…] tokens are not counted");
    let w = gguf::lm_weights(&f, &c, &backing).unwrap();
    let m = Model::new_lm(c, w, "q8_0", bytes.len() as u64).unwrap();
    check_config(&m, VOCAB, false);
    assert_eq!(m.weights.embedding.dtype, DType::Q8_0);
    assert_eq!(m.weights.lm_head.as_ref().unwrap().dtype, DType::Q8_0);
    assert!(in_place(&m.weights.embedding, &backing));
    check_values("mamba_q8_0_tok", &m);

    // Through `load`: a tokenizer of the file's vocabulary, or (while the
    // tokenizer is not implemented) an error that says the tokenizer failed.
    match gguf::load("tok.gguf", backing) {
        Ok(m) => {
            let t = m.tokenizer.clone().expect("tokenizer");
            assert!(t.vocab_size() == PADDED_VOCAB || t.vocab_size() == VOCAB);
            check_config(&m, VOCAB, false);
        }
        Err(e) => assert!(e.message.contains("tokenizer"), "{}", e.message),
    }
}

#[test]
fn q8row_3d_conv_odd_int_types_default_eps() {
    let f = GgufFile::parse(&fixture("mamba_q8row")).unwrap();
    assert_eq!(
        f.tensor("blk.0.ssm_conv1d.weight").unwrap().dims,
        vec![4, 1, 40]
    );
    assert_eq!(f.get("mamba.block_count"), Some(&Value::I32(2)));
    assert_eq!(f.get("mamba.ssm.inner_size"), Some(&Value::I64(40)));
    assert!(f.get("mamba.attention.layer_norm_rms_epsilon").is_none());
    assert_eq!(gguf::file_type_name(&f), "unspecified");
    let (m, backing) = load_fixture("mamba_q8row");
    check_config(&m, PADDED_VOCAB, true);
    let w = &m.weights;
    assert_eq!(w.embedding.dtype, DType::Q8Row);
    assert_eq!(w.layers[1].mixer.x_proj.dtype, DType::Q8Row);
    assert_eq!(w.layers[1].mixer.dt_proj.dtype, DType::Q8Row);
    assert!(in_place(&w.layers[1].mixer.x_proj, &backing));
    assert_eq!(
        (w.layers[0].mixer.conv_w.rows, w.layers[0].mixer.conv_w.cols),
        (D_INNER, D_CONV)
    );
    check_values("mamba_q8row", &m);
}

#[test]
fn every_value_type() {
    let f = GgufFile::parse(&fixture("kv_types")).unwrap();
    assert_eq!(f.architecture().unwrap(), "test");
    assert_eq!(f.get("t.u8"), Some(&Value::U8(200)));
    assert_eq!(f.get("t.i8"), Some(&Value::I8(-100)));
    assert_eq!(f.get("t.u16"), Some(&Value::U16(60000)));
    assert_eq!(f.get("t.i16"), Some(&Value::I16(-30000)));
    assert_eq!(f.get("t.u32"), Some(&Value::U32(4_000_000_000)));
    assert_eq!(f.get("t.i32"), Some(&Value::I32(-2_000_000_000)));
    assert_eq!(f.get("t.u64"), Some(&Value::U64(1 << 40)));
    assert_eq!(f.get("t.i64"), Some(&Value::I64(-(1 << 40))));
    assert_eq!(f.get_f32("t.f32").unwrap(), 1.5);
    assert_eq!(f.get("t.f64"), Some(&Value::F64(0.1)));
    assert!(f.get_bool("t.bool").unwrap());
    assert_eq!(f.get_str("t.str").unwrap(), "héllo");
    assert_eq!(f.get_i32_array("t.arr_i32").unwrap(), vec![1, -2, 3]);
    assert_eq!(f.get_i32_array("t.arr_u8").unwrap(), vec![1, 2, 255]);
    assert_eq!(f.get_f32_array("t.arr_f32").unwrap(), vec![0.5, -0.25]);
    assert_eq!(f.get_str_array("t.arr_str").unwrap(), ["a", "", "Ġb"]);
    assert!(matches!(f.get("t.arr_u8"), Some(Value::Array(Array::U8(v))) if v == &[1, 2, 255]));
    let msg = f.get_i32_array("t.arr_u64").unwrap_err().message;
    assert!(
        msg.contains("t.arr_u64[1]") && msg.contains("does not fit"),
        "{msg}"
    );
    assert!(f.get_bool("t.bools").is_err());
    assert_eq!(
        f.get("t.bools"),
        Some(&Value::Array(Array::Bool(vec![true, false])))
    );
    assert_eq!(
        f.get("t.nested"),
        Some(&Value::Array(Array::Array(vec![
            Array::I32(vec![1, 2]),
            Array::I32(vec![3])
        ])))
    );
    // Integer accessors accept any integer type that fits.
    assert_eq!(f.get_u32("t.u8").unwrap(), 200);
    assert_eq!(f.get_u64("t.u64").unwrap(), 1 << 40);
    assert_eq!(f.get_i64("t.i32").unwrap(), -2_000_000_000);
    // ... and name the key otherwise.
    let msg = |r: mamba::Result<u32>| r.unwrap_err().message;
    assert!(msg(f.get_u32("t.i8")).contains("t.i8"));
    assert!(msg(f.get_u32("t.u64")).contains("t.u64"));
    assert!(msg(f.get_u32("t.str")).contains("t.str has type string"));
    assert!(msg(f.get_u32("no.such")).contains("missing metadata key no.such"));
    assert!(f.get_str("t.u8").unwrap_err().message.contains("t.u8"));
    assert!(f
        .get_str_array("t.arr_i32")
        .unwrap_err()
        .message
        .contains("t.arr_i32"));
    assert!(f
        .get_i32_array("t.arr_str")
        .unwrap_err()
        .message
        .contains("t.arr_str"));
    assert!(f
        .require_tensor("nope")
        .unwrap_err()
        .message
        .contains("nope"));
    let t = f.tensor("t.weight").unwrap();
    assert_eq!(
        (t.dims.clone(), t.ggml_type, t.nbytes),
        (vec![5, 3], 0, Some(60))
    );
    let off = f.tensor_file_offset(t) as usize;
    let b = fixture("kv_types");
    assert_eq!(
        f32::from_le_bytes(b[off + 56..off + 60].try_into().unwrap()),
        14.0
    );
    // Not a mamba file: the loader names the architecture.
    let e = gguf::load("kv_types.gguf", heap(&b))
        .err()
        .expect("not mamba");
    assert!(e.message.contains("\"test\""), "{}", e.message);
    assert_eq!(e.kind, ErrorKind::Unsupported);
}

// ---------------------------------------------------------------------------
// A small GGUF writer for building modified and hostile files.

fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put_str(b: &mut Vec<u8>, s: &str) {
    put_u64(b, s.len() as u64);
    b.extend_from_slice(s.as_bytes());
}

fn put_value(b: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => b.push(*x),
        Value::I8(x) => b.push(*x as u8),
        Value::U16(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => put_u32(b, *x),
        Value::I32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => put_u64(b, *x),
        Value::I64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => b.push(*x as u8),
        Value::String(s) => put_str(b, s),
        Value::Array(a) => put_array(b, a),
    }
}

fn put_array(b: &mut Vec<u8>, a: &Array) {
    put_u32(b, a.elem_type());
    put_u64(b, a.len() as u64);
    match a {
        Array::U8(v) => v.iter().for_each(|x| b.push(*x)),
        Array::I8(v) => v.iter().for_each(|x| b.push(*x as u8)),
        Array::U16(v) => v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes())),
        Array::I16(v) => v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes())),
        Array::U32(v) => v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes())),
        Array::I32(v) => v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes())),
        Array::U64(v) => v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes())),
        Array::I64(v) => v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes())),
        Array::F32(v) => v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes())),
        Array::F64(v) => v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes())),
        Array::Bool(v) => v.iter().for_each(|x| b.push(*x as u8)),
        Array::String(v) => v.iter().for_each(|x| put_str(b, x)),
        Array::Array(v) => v.iter().for_each(|x| put_array(b, x)),
    }
}

struct T {
    name: String,
    dims: Vec<u64>,
    ty: u32,
    data: Vec<u8>,
}

fn write(kvs: &[(String, Value)], tensors: &[T]) -> Vec<u8> {
    let align = kvs
        .iter()
        .find(|(k, _)| k == "general.alignment")
        .and_then(|(_, v)| v.as_int())
        .unwrap_or(32) as usize;
    let mut b = b"GGUF".to_vec();
    put_u32(&mut b, 3);
    put_u64(&mut b, tensors.len() as u64);
    put_u64(&mut b, kvs.len() as u64);
    for (k, v) in kvs {
        put_str(&mut b, k);
        put_u32(&mut b, v.type_id());
        put_value(&mut b, v);
    }
    let mut off = 0usize;
    for t in tensors {
        put_str(&mut b, &t.name);
        put_u32(&mut b, t.dims.len() as u32);
        for &d in &t.dims {
            put_u64(&mut b, d);
        }
        put_u32(&mut b, t.ty);
        put_u64(&mut b, off as u64);
        off += t.data.len().div_ceil(align) * align;
    }
    b.resize(b.len().div_ceil(align) * align, 0);
    for t in tensors {
        b.extend_from_slice(&t.data);
        b.resize(b.len().div_ceil(align) * align, 0);
    }
    b
}

/// The metadata and tensors of a fixture, for modification and rewriting.
fn explode(stem: &str) -> (Vec<(String, Value)>, Vec<T>) {
    let bytes = fixture(stem);
    let f = GgufFile::parse(&bytes).unwrap();
    let tensors = f
        .tensors()
        .iter()
        .map(|t| {
            let s = f.tensor_file_offset(t) as usize;
            T {
                name: t.name.clone(),
                dims: t.dims.clone(),
                ty: t.ggml_type,
                data: bytes[s..s + t.nbytes.unwrap() as usize].to_vec(),
            }
        })
        .collect();
    (f.metadata().to_vec(), tensors)
}

fn load_err(kvs: &[(String, Value)], tensors: &[T]) -> mamba::Error {
    match gguf::load("x.gguf", heap(&write(kvs, tensors))) {
        Ok(_) => panic!("loaded"),
        Err(e) => e,
    }
}

fn set(kvs: &mut Vec<(String, Value)>, key: &str, v: Value) {
    match kvs.iter_mut().find(|(k, _)| k == key) {
        Some(kv) => kv.1 = v,
        None => kvs.push((key.to_string(), v)),
    }
}

#[test]
fn rewritten_fixture_loads() {
    let (kvs, ts) = explode("mamba_f32_tied");
    let m = gguf::load("x.gguf", heap(&write(&kvs, &ts))).unwrap();
    check_values("mamba_f32_tied", &m);
}

#[test]
fn loader_errors_name_the_problem() {
    let (kvs, ts) = explode("mamba_f32_tied");

    let mut k = kvs.clone();
    set(
        &mut k,
        "general.architecture",
        Value::String("llama".into()),
    );
    let e = load_err(&k, &ts);
    assert!(
        e.message.contains("\"llama\"") && e.message.starts_with("x.gguf"),
        "{}",
        e.message
    );

    let mut k = kvs.clone();
    k.retain(|(key, _)| key != "mamba.ssm.state_size");
    assert!(load_err(&k, &ts).message.contains("mamba.ssm.state_size"));

    let mut k = kvs.clone();
    set(&mut k, "mamba.block_count", Value::String("2".into()));
    assert!(load_err(&k, &ts)
        .message
        .contains("mamba.block_count has type string"));

    let mut k = kvs.clone();
    set(&mut k, "mamba.block_count", Value::I32(-2));
    assert!(load_err(&k, &ts).message.contains("mamba.block_count"));

    let mut k = kvs.clone();
    set(&mut k, "mamba.block_count", Value::U32(1));
    assert!(load_err(&k, &ts).message.contains("more blocks"));

    let mut k = kvs.clone();
    set(&mut k, "mamba.ssm.dt_b_c_rms", Value::Bool(true));
    assert_eq!(load_err(&k, &ts).kind, ErrorKind::Unsupported);

    let mut t: Vec<T> = explode("mamba_f32_tied").1;
    t.retain(|t| t.name != "blk.1.ssm_dt.bias");
    assert!(load_err(&kvs, &t)
        .message
        .contains("missing tensor blk.1.ssm_dt.bias"));

    let mut t = explode("mamba_f32_tied").1;
    let x = t
        .iter_mut()
        .find(|t| t.name == "blk.1.ssm_x.weight")
        .unwrap();
    x.dims.reverse();
    let e = load_err(&kvs, &t);
    assert!(
        e.message.contains("blk.1.ssm_x.weight has shape [10, 40]"),
        "{}",
        e.message
    );

    let mut t = explode("mamba_f32_tied").1;
    let x = t
        .iter_mut()
        .find(|t| t.name == "blk.1.ssm_in.weight")
        .unwrap();
    x.ty = 2; // Q4_0: 32 elements in 18 bytes
    x.data = vec![0; (2 * D_INNER * D_MODEL) / 32 * 18];
    let e = load_err(&kvs, &t);
    assert!(
        e.message.contains("blk.1.ssm_in.weight") && e.message.contains("Q4_0"),
        "{}",
        e.message
    );
    assert_eq!(e.kind, ErrorKind::Unsupported);

    let mut t = explode("mamba_f32_tied").1;
    let x = t
        .iter_mut()
        .find(|t| t.name == "blk.0.ssm_in.weight")
        .unwrap();
    x.ty = 77; // a type this parser does not know: its size cannot be checked
    let e = load_err(&kvs, &t);
    assert!(
        e.message.contains("blk.0.ssm_in.weight") && e.message.contains("77"),
        "{}",
        e.message
    );

    // token_embd rows decide padded_vocab; a tokenizer longer than that is refused.
    let mut k = kvs.clone();
    let toks: Vec<String> = (0..41).map(|i| format!("t{i}")).collect();
    set(
        &mut k,
        "tokenizer.ggml.tokens",
        Value::Array(Array::String(toks)),
    );
    assert!(load_err(&k, &ts).message.contains("vocab_size 41"));
}

// ---------------------------------------------------------------------------
// Hand-built hostile headers.

fn header(version: u32, n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    put_u32(&mut b, version);
    put_u64(&mut b, n_tensors);
    put_u64(&mut b, n_kv);
    b
}

fn parse_err(b: &[u8]) -> String {
    match GgufFile::parse(b) {
        Ok(_) => panic!("parsed"),
        Err(e) => e.message,
    }
}

fn with_kv(key: &str, v: &Value) -> Vec<u8> {
    let mut b = header(3, 0, 1);
    put_str(&mut b, key);
    put_u32(&mut b, v.type_id());
    put_value(&mut b, v);
    b
}

/// A file with one tensor info (the given raw fields) and `data` bytes of data.
fn with_tensor(dims: &[u64], ty: u32, offset: u64, data: usize) -> Vec<u8> {
    let mut b = header(3, 1, 0);
    put_str(&mut b, "w");
    put_u32(&mut b, dims.len() as u32);
    for &d in dims {
        put_u64(&mut b, d);
    }
    put_u32(&mut b, ty);
    put_u64(&mut b, offset);
    b.resize(b.len().div_ceil(32) * 32 + data, 0);
    b
}

#[test]
fn hostile_headers() {
    assert!(parse_err(b"").contains("truncated"));
    assert!(parse_err(b"GGML\x03\0\0\0").contains("magic"));
    let e = GgufFile::parse(&header(1, 0, 0)).unwrap_err();
    assert!(e.message.contains("version 1") && e.kind == ErrorKind::Unsupported);
    assert!(parse_err(&header(4, 0, 0)).contains("version 4"));
    assert!(parse_err(&header(3u32.swap_bytes(), 0, 0)).contains("big-endian"));
    assert!(parse_err(&header(3, 0, 0)[..20]).contains("truncated"));
    assert!(GgufFile::parse(&header(2, 0, 0)).is_ok());

    // Counts and lengths larger than the file are refused before allocating.
    assert!(parse_err(&header(3, 1 << 60, 0)).contains("tensor count"));
    assert!(parse_err(&header(3, 0, u64::MAX)).contains("metadata count"));
    // Hard caps, whatever the file size.
    let mut b = header(3, 0, gguf::MAX_KV as u64 + 1);
    b.resize(b.len() + 13 * (gguf::MAX_KV + 1), 0);
    assert!(parse_err(&b).contains("exceed the limits"));
    let mut b = header(3, 0, 1);
    put_u64(&mut b, 1 << 62); // key length
    b.extend_from_slice(&[b'a'; 64]);
    assert!(parse_err(&b).contains("length of metadata key #0"));
    let mut b = header(3, 0, 1);
    put_str(&mut b, "k");
    put_u32(&mut b, vt::STRING);
    put_u64(&mut b, 1 << 63);
    assert!(parse_err(&b).contains("length of metadata key \"k\""));
    let mut b = header(3, 0, 1);
    put_str(&mut b, "k");
    put_u32(&mut b, vt::ARRAY);
    put_u32(&mut b, vt::U8);
    put_u64(&mut b, 1 << 40);
    b.extend_from_slice(&[0; 100]);
    assert!(parse_err(&b).contains("element count of metadata key \"k\""));
    // A count of empty nested arrays: each needs 12 bytes, so 1000 bytes hold < 84.
    let mut b = header(3, 0, 1);
    put_str(&mut b, "k");
    put_u32(&mut b, vt::ARRAY);
    put_u32(&mut b, vt::ARRAY);
    put_u64(&mut b, 100);
    b.extend_from_slice(&[0; 1000]);
    assert!(parse_err(&b).contains("element count"));
    // Deep nesting is refused (no stack overflow).
    let mut b = header(3, 0, 1);
    put_str(&mut b, "deep");
    put_u32(&mut b, vt::ARRAY);
    for _ in 0..10_000 {
        put_u32(&mut b, vt::ARRAY);
        put_u64(&mut b, 1);
    }
    assert!(parse_err(&b).contains("nests arrays"));

    // Bad values.
    let mut b = header(3, 0, 1);
    put_str(&mut b, "k");
    put_u32(&mut b, 13);
    b.extend_from_slice(&[0; 8]);
    assert!(parse_err(&b).contains("unknown value type 13"));
    let mut b = header(3, 0, 1);
    put_str(&mut b, "k");
    put_u32(&mut b, vt::BOOL);
    b.push(2);
    assert!(parse_err(&b).contains("bool"));
    let mut b = header(3, 0, 1);
    put_u64(&mut b, 2);
    b.extend_from_slice(&[0xff, 0xfe]);
    put_u32(&mut b, vt::U8);
    b.push(0);
    assert!(parse_err(&b).contains("UTF-8"));
    let mut b = header(3, 0, 2);
    for _ in 0..2 {
        put_str(&mut b, "k");
        put_u32(&mut b, vt::U8);
        b.push(0);
    }
    assert!(parse_err(&b).contains("\"k\" appears twice"));

    // Alignment.
    for a in [0u32, 3, 48] {
        let msg = parse_err(&with_kv("general.alignment", &Value::U32(a)));
        assert!(
            msg.contains("general.alignment") && msg.contains("power of two"),
            "{msg}"
        );
    }
    let msg = parse_err(&with_kv("general.alignment", &Value::String("32".into())));
    assert!(msg.contains("general.alignment has type string"), "{msg}");
    let f = GgufFile::parse(&with_kv("general.alignment", &Value::U64(8))).unwrap();
    assert_eq!(f.alignment(), 8);

    // Tensor infos.
    assert!(parse_err(&with_tensor(&[1; 100], 0, 0, 4)).contains("w has 100 dimensions"));
    assert!(parse_err(&with_tensor(&[1; 5], 0, 0, 4)).contains("5 dimensions"));
    let msg = parse_err(&with_tensor(&[4, 4], 0, 1 << 40, 64));
    assert!(
        msg.contains("tensor w") && msg.contains("past the end"),
        "{msg}"
    );
    let msg = parse_err(&with_tensor(&[4, 5], 0, 0, 64));
    assert!(msg.contains("past the end"), "{msg}");
    assert!(GgufFile::parse(&with_tensor(&[4, 4], 0, 0, 64)).is_ok());
    assert!(
        parse_err(&with_tensor(&[4, 4], 0, 16, 96)).contains("not a multiple of the alignment 32")
    );
    assert!(parse_err(&with_tensor(&[4, 4], 0, u64::MAX - 31, 64)).contains("past the end"));
    assert!(parse_err(&with_tensor(&[1 << 32, 1 << 32, 1 << 32], 0, 0, 64)).contains("overflows"));
    assert!(parse_err(&with_tensor(&[u64::MAX], 0, 0, 64)).contains("out of range"));
    assert!(parse_err(&with_tensor(&[1 << 61, 2], 0, 0, 64)).contains("overflows"));
    assert!(parse_err(&with_tensor(&[40, 2], 8, 0, 256)).contains("block size 32"));
    // Q8_ROW: rows of 4 + round_up(cols, 4) bytes.
    let f = GgufFile::parse(&with_tensor(&[5, 3], gguf::GGML_TYPE_Q8_ROW, 0, 36)).unwrap();
    assert_eq!(f.tensors()[0].nbytes, Some(36));
    assert!(
        parse_err(&with_tensor(&[5, 3], gguf::GGML_TYPE_Q8_ROW, 0, 35)).contains("past the end")
    );
    // Unknown types parse (the parser is generic) but have no size.
    let f = GgufFile::parse(&with_tensor(&[5, 3], 999, 0, 0)).unwrap();
    assert_eq!(f.tensors()[0].nbytes, None);
    assert_eq!(f.tensors()[0].type_name(), "unknown type 999");
    // Duplicate tensor names.
    let mut b = header(3, 2, 0);
    for _ in 0..2 {
        put_str(&mut b, "w");
        put_u32(&mut b, 1);
        put_u64(&mut b, 4);
        put_u32(&mut b, 0);
        put_u64(&mut b, 0);
    }
    b.resize(256, 0);
    assert!(parse_err(&b).contains("tensor w appears twice"));
}

// ---------------------------------------------------------------------------
// Mutation fuzzing: truncations and bit flips must give Ok or Err, never panic.

/// Parses and loads `b`; the result does not matter, only that it returns.
fn try_all(b: &[u8]) -> bool {
    let backing = heap(b);
    // The heap copy is zero-padded to whole u64s: parse what the loader sees.
    let parsed = GgufFile::parse(backing.bytes()).is_ok();
    let _ = GgufFile::parse(b);
    let loaded = gguf::load("fuzz.gguf", backing).is_ok();
    assert!(parsed || !loaded, "loaded what did not parse");
    loaded
}

const FUZZ_FIXTURES: [&str; 5] = [
    "mamba_f32_tied",
    "mamba_f16_untied",
    "mamba_bf16_v2",
    "mamba_q8_0_tok",
    "mamba_q8row",
];

#[test]
fn truncation_never_panics() {
    for stem in FUZZ_FIXTURES {
        let b = fixture(stem);
        let header_end = GgufFile::parse(&b).unwrap().data_offset() as usize;
        for n in (0..b.len()).step_by(7) {
            let r = GgufFile::parse(&b[..n]);
            if n < header_end {
                assert!(r.is_err(), "{stem} truncated to {n} bytes parsed");
            }
            try_all(&b[..n]);
        }
    }
}

#[test]
fn bit_flips_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ok = 0;
    for stem in FUZZ_FIXTURES {
        let orig = fixture(stem);
        let header_end = GgufFile::parse(&orig).unwrap().data_offset() as usize;
        for i in 0..1500 {
            let mut b = orig.clone();
            // Mostly the header/metadata/tensor-info region; sometimes anywhere.
            let region = if i % 8 == 7 { b.len() } else { header_end };
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(region);
                b[at] ^= 1 << rng.below(8);
            }
            ok += try_all(&b) as usize;
        }
        // Whole random bytes written over header fields.
        for _ in 0..300 {
            let mut b = orig.clone();
            let at = rng.below(header_end.saturating_sub(8));
            b[at..at + 8].copy_from_slice(&rng.next().to_le_bytes());
            try_all(&b);
        }
    }
    assert!(
        ok > 0,
        "some mutated files (flips in padding, values) still load"
    );
}
