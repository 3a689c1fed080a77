//! Cross-machine bit-identity: hashes of the exact output bits of a fixed
//! set of models, committed in `tests/golden/bits.txt` (written on x86-64)
//! and checked on every ISA of whatever machine runs the tests, including
//! NEON under qemu (`.ci/neon.sh`). Each stream is also compared ISA by ISA
//! in `tests/identity.rs`; this file pins the bits across architectures and
//! across versions (a change of summation order or activation shows here).
//! Each case has one line per weight precision (`name@f16`, …, `name@i8`).
//!
//! Regenerate (only when the numerics change on purpose):
//! `RNNCELL_WRITE_GOLDEN=1 cargo test --release --test golden`

use rnncell::*;

struct Rng(u64);
impl Rng {
    fn f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32() * scale).collect()
    }
}

fn cases() -> Vec<(&'static str, ModelSpec)> {
    let lstm = |o: LstmOptions| CellKind::Lstm(o);
    let d = LstmOptions::default();
    vec![
        ("lstm", ModelSpec::new(lstm(d), 7, 13).layers(2)),
        (
            "lstm_bi",
            ModelSpec::new(lstm(d), 16, 33).direction(Direction::Bidirectional),
        ),
        (
            "lstm_peep_clip",
            ModelSpec::new(
                lstm(LstmOptions {
                    peephole: true,
                    clip: Some(0.9),
                    ..d
                }),
                5,
                17,
            ),
        ),
        (
            "lstm_proj",
            ModelSpec::new(
                lstm(LstmOptions {
                    proj_size: 6,
                    proj_bias: true,
                    proj_clip: Some(0.5),
                    cell_clip: Some(2.0),
                    ..d
                }),
                9,
                19,
            )
            .layers(2),
        ),
        (
            "lstm_cifg_tflite",
            ModelSpec::new(
                lstm(LstmOptions {
                    coupling: Coupling::InputFromForget,
                    ..d
                }),
                4,
                9,
            ),
        ),
        (
            "lstm_cifg_onnx",
            ModelSpec::new(
                lstm(LstmOptions {
                    coupling: Coupling::ForgetFromInput,
                    ..d
                }),
                4,
                9,
            ),
        ),
        ("gru_lbr", ModelSpec::new(CellKind::gru(), 11, 37).layers(2)),
        (
            "gru_rb_rev",
            ModelSpec::new(CellKind::gru_reset_before(), 8, 31).direction(Direction::Reverse),
        ),
        ("rnn_tanh", ModelSpec::new(CellKind::rnn_tanh(), 6, 65)),
        (
            "rnn_relu_bi_sum",
            ModelSpec::new(CellKind::rnn_relu(), 3, 10)
                .direction(Direction::Bidirectional)
                .merge(MergeMode::Sum),
        ),
    ]
}

fn weights(spec: &ModelSpec, rng: &mut Rng) -> Vec<LayerWeights> {
    let (g, h) = (spec.cell.gates(), spec.hidden_size);
    let s = 1.5 / (h as f32).sqrt();
    let mut out = Vec::new();
    for l in 0..spec.num_layers {
        for _ in 0..spec.directions() {
            let mut lw = LayerWeights::zeros(g, h, spec.layer_input_size(l), spec.state_size());
            lw.w = rng.vec(lw.w.len(), s);
            lw.r = rng.vec(lw.r.len(), s);
            lw.b_w = rng.vec(lw.b_w.len(), s);
            lw.b_r = rng.vec(lw.b_r.len(), s);
            if let CellKind::Lstm(o) = spec.cell {
                if o.peephole {
                    lw.peephole = rng.vec(3 * h, s);
                }
                if o.proj_size > 0 {
                    lw.proj = rng.vec(o.proj_size * h, s);
                    if o.proj_bias {
                        lw.proj_bias = rng.vec(o.proj_size, s);
                    }
                }
            }
            out.push(lw);
        }
    }
    out
}

/// FNV-1a over the bits of every output, final h and final c.
fn hash(model: &Model, rng: &mut Rng) -> u64 {
    let sp = *model.spec();
    let (t, b) = (6, 3);
    let x = rng.vec(t * b * sp.input_size, 2.0);
    let ld = sp.num_layers * sp.directions();
    let h0 = rng.vec(ld * b * sp.state_size(), 1.0);
    let mut y = vec![0.0; t * b * sp.output_size()];
    let mut hn = vec![0.0; ld * b * sp.state_size()];
    let mut cn = vec![0.0; ld * b * sp.hidden_size];
    let lens = [6, 4, 1];
    let mut seq = Sequence::new(&x, t, b);
    seq.h0 = Some(&h0);
    seq.seq_lens = Some(&lens);
    let lstm = sp.has_cell_state();
    model
        .run(
            &seq,
            &mut SequenceOutput {
                output: &mut y,
                h_n: Some(&mut hn),
                c_n: lstm.then_some(&mut cn[..]),
            },
        )
        .unwrap();
    let mut hsh = 0xcbf29ce484222325u64;
    for v in y
        .iter()
        .chain(&hn)
        .chain(if lstm { &cn[..] } else { &[][..] })
    {
        for byte in v.to_bits().to_le_bytes() {
            hsh = (hsh ^ byte as u64).wrapping_mul(0x100000001b3);
        }
    }
    hsh
}

#[test]
fn output_bits_match_the_committed_hashes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/bits.txt");
    let write = std::env::var_os("RNNCELL_WRITE_GOLDEN").is_some();
    let mut lines = Vec::new();
    // Every ISA here, then the portable emulation of the AVX-512 geometry
    // (16 lanes, 8 columns per block), which runs on any CPU.
    let sets = Isa::available().into_iter().map(Some).chain([None]);
    let build = |isa: Option<Isa>, spec: ModelSpec, w: &[LayerWeights]| {
        match isa {
            Some(isa) => Model::with_isa(spec, w, isa),
            None => rnncell::bench_internals::model_with_wide16_emulation(spec, w),
        }
        .unwrap()
    };
    for isa in sets {
        let label = isa.map_or("wide16 emulation".to_string(), |i| i.to_string());
        let mut table = Vec::new();
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for (name, spec) in cases() {
            let w = weights(&spec, &mut rng);
            let model = build(isa, spec, &w);
            table.push(format!("{name} {:016x}", hash(&model, &mut rng)));
        }
        // Every reduced precision on the same cases (its own weights and
        // inputs, so the f32 lines above keep their values).
        for (pi, p) in WeightPrecision::ALL.into_iter().enumerate().skip(1) {
            let mut rng = Rng(0x5eed_1234_abcd_0001 ^ ((pi as u64) << 32));
            for (name, spec) in cases() {
                let spec = spec.precision(p);
                let w = weights(&spec, &mut rng);
                let model = build(isa, spec, &w);
                table.push(format!("{name}@{p} {:016x}", hash(&model, &mut rng)));
            }
        }
        if lines.is_empty() {
            lines = table.clone();
        }
        assert_eq!(table, lines, "{label} differs from {}", Isa::available()[0]);
    }
    let text = lines.join("\n") + "\n";
    if write {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text, want,
        "output bits differ from tests/golden/bits.txt (written on x86-64)"
    );
}
