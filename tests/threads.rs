//! Thread safety through the C API (the extern "C" functions, called as a C
//! program would): one model shared by 8 sessions on 8 threads, each with its
//! own prompt, gives bit-identical logits to running the same prompts one
//! after another; and errors are reported per thread.

use mamba::ffi::api::*;
use mamba::ffi::mamba_status;
use std::ffi::{CStr, CString};
use std::sync::{Arc, Barrier};

const THREADS: usize = 8;
const STEPS: usize = 6;

struct Model(*mut mamba_model);
// SAFETY: a model handle may be shared between threads (documented in mamba.h:
// sessions are per thread, the model is read-only).
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

fn fixture() -> CString {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm/A.gguf");
    CString::new(p.to_str().unwrap()).unwrap()
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(mamba_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Thread `i`'s prompt: different lengths and tokens per thread.
fn prompt(i: usize, vocab: i32) -> Vec<i32> {
    (0..3 + 2 * i)
        .map(|k| ((i * 97 + k * 31 + 7) as i32) % vocab)
        .collect()
}

/// Prompt mode, then STEPS greedy tokens one at a time; every logit row kept.
fn run(model: &Model, i: usize, n_logits: usize, vocab: i32) -> Vec<Vec<f32>> {
    let mut s = std::ptr::null_mut();
    unsafe {
        assert_eq!(mamba_session_new(model.0, &mut s), mamba_status::MAMBA_OK);
        let p = prompt(i, vocab);
        let mut l = vec![0f32; n_logits];
        let mut out = Vec::new();
        let st = mamba_forward_tokens(s, p.as_ptr(), p.len(), l.as_mut_ptr(), l.len());
        assert_eq!(st, mamba_status::MAMBA_OK, "{}", last_error());
        out.push(l.clone());
        for _ in 0..STEPS {
            let next = l[..vocab as usize]
                .iter()
                .enumerate()
                .fold(0, |b, (k, &v)| if v > l[b] { k } else { b });
            let st = mamba_forward(s, next as i32, l.as_mut_ptr(), l.len());
            assert_eq!(st, mamba_status::MAMBA_OK, "{}", last_error());
            out.push(l.clone());
        }
        mamba_session_free(s);
        out
    }
}

#[test]
fn eight_sessions_on_eight_threads_match_sequential() {
    let path = fixture();
    let mut m = std::ptr::null_mut();
    let mut info = unsafe { std::mem::zeroed::<mamba_model_info>() };
    unsafe {
        assert_eq!(
            mamba_model_load(path.as_ptr(), std::ptr::null(), &mut m),
            mamba_status::MAMBA_OK
        );
        assert_eq!(mamba_model_get_info(m, &mut info), mamba_status::MAMBA_OK);
    }
    let model = Arc::new(Model(m));
    let (n, vocab) = (info.n_logits as usize, info.vocab_size as i32);

    let sequential: Vec<_> = (0..THREADS).map(|i| run(&model, i, n, vocab)).collect();
    // Prompts differ, so results differ: the comparison below means something.
    assert_ne!(sequential[0][0], sequential[1][0]);

    let start = Arc::new(Barrier::new(THREADS));
    let concurrent: Vec<_> = (0..THREADS)
        .map(|i| {
            let (model, start) = (model.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                run(&model, i, n, vocab)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();

    for i in 0..THREADS {
        assert_eq!(sequential[i].len(), concurrent[i].len());
        for (a, b) in sequential[i].iter().zip(&concurrent[i]) {
            let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "thread {i}: logits differ from the sequential run");
        }
    }
    unsafe { mamba_model_free(model.0) };
}

#[test]
fn errors_are_reported_per_thread() {
    let path = fixture();
    let mut m = std::ptr::null_mut();
    unsafe {
        assert_eq!(
            mamba_model_load(path.as_ptr(), std::ptr::null(), &mut m),
            mamba_status::MAMBA_OK
        );
    }
    let model = Arc::new(Model(m));
    let b = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let (model, b) = (model.clone(), b.clone());
            std::thread::spawn(move || unsafe {
                let mut s = std::ptr::null_mut();
                assert_eq!(mamba_session_new(model.0, &mut s), mamba_status::MAMBA_OK);
                // Each thread fails in its own way, all at about the same time.
                let bad = 1_000_000 + i as i32;
                b.wait();
                let st = mamba_forward(s, bad, std::ptr::null_mut(), 0);
                assert_eq!(st, mamba_status::MAMBA_ERR_INVALID_ARGUMENT);
                let mine = last_error();
                assert!(mine.contains(&bad.to_string()), "thread {i}: {mine}");
                // Other threads fail and succeed meanwhile...
                b.wait();
                assert_eq!(
                    mamba_forward(s, 1, std::ptr::null_mut(), 0),
                    mamba_status::MAMBA_OK
                );
                b.wait();
                // ...and this thread's message is still its own.
                assert_eq!(last_error(), mine, "thread {i}");
                for j in 0..THREADS {
                    if j != i {
                        let other = (1_000_000 + j as i32).to_string();
                        assert!(
                            !last_error().contains(&other),
                            "thread {i} sees thread {j}'s error"
                        );
                    }
                }
                mamba_session_free(s);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // A thread that never failed has an empty message.
    std::thread::spawn(|| assert_eq!(last_error(), ""))
        .join()
        .unwrap();
    unsafe { mamba_model_free(model.0) };
}
