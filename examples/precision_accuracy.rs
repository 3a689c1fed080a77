//! Accuracy of the reduced weight precisions (issue 12, design §2.4): how far
//! each [`WeightPrecision`] moves a model's outputs and states from the f32
//! model on the same weights, and from the float64 truth.
//!
//! ```text
//! cargo run --release --example precision_accuracy                  # the README table
//! cargo run --release --example precision_accuracy -- --json acc.json
//! cargo run --release --example precision_accuracy -- --sizes 64,256 --cells lstm --no-trained
//! cargo run --release --example precision_accuracy -- --big-steps 300   # fewer steps at H ≥ 1024
//! ```
//!
//! Models: random ones with PyTorch's initialisation U(±1/√H), I = H,
//! inputs uniform in [−1, 1], LSTM and GRU at H = 64, 256, 1024, T = 1000
//! steps, batch 1; and the two torch-trained models of `tests/models/`
//! (`scripts/train_small.py`: I = 16, H = 128) on their held-out sequence
//! (T = 1000), whose prediction head also gives the task's mean squared
//! error at each precision.
//!
//! Columns, each a max of absolute differences over every step and unit:
//! * `y−y32`: the output (= h at every step: one layer, no projection)
//!   against our f32 model on the same weights ([`Model::run`]);
//! * `hT−h32`: the final h;
//! * `c−c32`: the LSTM's c at every step (by [`Model::step`], whose outputs
//!   are checked to equal the run's bit for bit);
//! * `y−y64`: against [`reference::oracle_run`] in f64 on the original
//!   weights (the spec at [`WeightPrecision::F32`]): everything the user
//!   loses;
//! * `y−y64r`: against the f64 oracle at the precision (f64 arithmetic on the
//!   rounded / quantized weights): what the f32 arithmetic adds; the rest
//!   of `y−y64` is the rounding of the weights;
//! * `drift`: the max of `y−y64` over steps 900–1000 divided by its max
//!   over steps 100–200 (windows scale with T when T < 1000); it must stay
//!   ≤ 2 (no blow-up);
//! * `MSE`: trained models only, the prediction head (in f64, in this
//!   file) on the outputs against the held-out targets, steps 10–999 (as
//!   scripts/train_small.py reports it).
//!
//! The f64 oracle is a plain loop: at H = 1024 one 1000-step run costs tens
//! of seconds (the time of each is printed on stderr); `--big-steps N` runs
//! H ≥ 1024 for N steps only, and the table's `T` column says so.

use rnncell::reference::oracle_run;
use rnncell::*;
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};
use std::time::Instant;

type Res<T> = std::result::Result<T, String>;

fn rng_vec(seed: &mut u64, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            ((*seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// The prediction head of a trained model: `pred = W·y + b`.
struct Head {
    w: Vec<f32>,
    b: Vec<f32>,
    /// [T, outputs].
    target: Vec<f32>,
}

struct Case {
    cell: &'static str,
    source: String,
    spec: ModelSpec,
    weights: Vec<LayerWeights>,
    /// [T, 1, I].
    x: Vec<f32>,
    steps: usize,
    head: Option<Head>,
}

/// One model at one precision, run over the case's sequence.
struct Outputs {
    y: Vec<f32>,
    h_n: Vec<f32>,
    /// c after every step, [T, H] (LSTM), else empty.
    c: Vec<f32>,
}

struct Row {
    cell: &'static str,
    h: usize,
    source: String,
    precision: WeightPrecision,
    steps: usize,
    y_f32: f64,
    h_f32: f64,
    c_f32: Option<f64>,
    y_f64: f64,
    y_f64r: f64,
    early: f64,
    late: f64,
    mse: Option<f64>,
}

fn cell_kind(cell: &str) -> CellKind {
    if cell == "lstm" {
        CellKind::lstm()
    } else {
        CellKind::gru()
    }
}

fn random_case(cell: &'static str, h: usize, steps: usize) -> Case {
    let spec = ModelSpec::new(cell_kind(cell), h, h);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (h as u64) << 8 ^ cell.len() as u64;
    let k = 1.0 / (h as f32).sqrt();
    let mut lw = LayerWeights::zeros(spec.cell.gates(), h, h, h);
    lw.w = rng_vec(&mut seed, lw.w.len(), k);
    lw.r = rng_vec(&mut seed, lw.r.len(), k);
    lw.b_w = rng_vec(&mut seed, lw.b_w.len(), k);
    lw.b_r = rng_vec(&mut seed, lw.b_r.len(), k);
    let x = rng_vec(&mut seed, steps * h, 1.0);
    Case {
        cell,
        source: "random".into(),
        spec,
        weights: vec![lw],
        x,
        steps,
        head: None,
    }
}

/// A little-endian f32 tensor of a safetensors file, with its shape.
fn tensor(st: &SafeTensors<'_>, name: &str, file: &Path) -> Res<(Vec<f32>, Vec<usize>)> {
    let t = st
        .tensor(name)
        .map_err(|e| format!("{}: tensor {name}: {e}", file.display()))?;
    if t.dtype() != Dtype::F32 {
        return Err(format!(
            "{}: tensor {name} is {:?}, expected F32",
            file.display(),
            t.dtype()
        ));
    }
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((v, t.shape().to_vec()))
}

fn read(path: &Path) -> Res<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The torch-trained model `torch_<cell>_trained` of `dir` and its held-out
/// sequence (scripts/train_small.py, tests/models/README.md).
fn trained_case(dir: &Path, cell: &'static str) -> Res<Case> {
    let wpath = dir.join(format!("torch_{cell}_trained.safetensors"));
    let dpath = dir.join(format!("torch_{cell}_trained_heldout.safetensors"));
    let (wbytes, dbytes) = (read(&wpath)?, read(&dpath)?);
    let ws = SafeTensors::deserialize(&wbytes).map_err(|e| format!("{}: {e}", wpath.display()))?;
    let ds = SafeTensors::deserialize(&dbytes).map_err(|e| format!("{}: {e}", dpath.display()))?;
    let (w, wshape) = tensor(&ws, "weight_ih_l0", &wpath)?;
    let (r, _) = tensor(&ws, "weight_hh_l0", &wpath)?;
    let (b_w, _) = tensor(&ws, "bias_ih_l0", &wpath)?;
    let (b_r, _) = tensor(&ws, "bias_hh_l0", &wpath)?;
    let kind = cell_kind(cell);
    let (input, hidden) = (wshape[1], wshape[0] / kind.gates());
    let spec = ModelSpec::new(kind, input, hidden);
    let t = LayerTensors {
        w: &w,
        r: &r,
        b_w: Some(&b_w),
        b_r: Some(&b_r),
        ..LayerTensors::default()
    };
    let lw = LayerWeights::from_layout(Layout::PyTorch, &spec, 0, &t)
        .map_err(|e| format!("{}: {e}", wpath.display()))?;
    let (x, xshape) = tensor(&ds, "input", &dpath)?;
    let (hw, _) = tensor(&ds, "head.weight", &dpath)?;
    let (hb, _) = tensor(&ds, "head.bias", &dpath)?;
    let (target, _) = tensor(&ds, "target", &dpath)?;
    if xshape.len() != 3 || xshape[1] != 1 || xshape[2] != input {
        return Err(format!(
            "{}: input has shape {xshape:?}, expected [T, 1, {input}]",
            dpath.display()
        ));
    }
    Ok(Case {
        cell,
        source: "trained".into(),
        spec,
        weights: vec![lw],
        x,
        steps: xshape[0],
        head: Some(Head {
            w: hw,
            b: hb,
            target,
        }),
    })
}

fn run(case: &Case, p: WeightPrecision) -> Res<Outputs> {
    let sp = case.spec.precision(p);
    let name = |e: Error| format!("{} H={} {}: {e}", case.cell, sp.hidden_size, p.name());
    let m = Model::new(sp, &case.weights).map_err(name)?;
    let (t, h) = (case.steps, sp.hidden_size);
    let mut y = vec![0.0f32; t * h];
    let mut h_n = vec![0.0f32; h];
    let mut c_n = vec![0.0f32; h];
    let lstm = sp.has_cell_state();
    m.run(
        &Sequence::new(&case.x, t, 1),
        &mut SequenceOutput {
            output: &mut y,
            h_n: Some(&mut h_n),
            c_n: lstm.then_some(&mut c_n[..]),
        },
    )
    .map_err(name)?;
    let mut c = Vec::new();
    if lstm {
        // c at every step: step through the sequence (same bits as run).
        let mut st = m.new_state();
        let mut yt = vec![0.0f32; h];
        let i = sp.input_size;
        for s in 0..t {
            m.step(&mut st, &case.x[s * i..][..i], &mut yt)
                .map_err(name)?;
            if yt
                .iter()
                .zip(&y[s * h..][..h])
                .any(|(a, b)| a.to_bits() != b.to_bits())
            {
                return Err(format!(
                    "{} H={h} {}: step {s} of Model::step differs from Model::run",
                    case.cell,
                    p.name()
                ));
            }
            c.extend_from_slice(st.c(0).expect("an LSTM state has c"));
        }
    }
    Ok(Outputs { y, h_n, c })
}

fn max_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
}

fn max_diff64(a: &[f32], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

fn oracle(case: &Case, p: WeightPrecision) -> Res<Vec<f64>> {
    let sp = case.spec.precision(p);
    let t0 = Instant::now();
    let out =
        oracle_run(&sp, &case.weights, &Sequence::new(&case.x, case.steps, 1)).map_err(|e| {
            format!(
                "oracle {} H={} {}: {e}",
                case.cell,
                sp.hidden_size,
                p.name()
            )
        })?;
    eprintln!(
        "  f64 oracle {} {} H={} {} T={}: {:.1} s",
        case.source,
        case.cell,
        sp.hidden_size,
        p.name(),
        case.steps,
        t0.elapsed().as_secs_f64()
    );
    Ok(out.output)
}

/// Steps left out of the task's loss, as in scripts/train_small.py (no
/// history yet).
const MSE_SKIP: usize = 10;

/// Mean squared error of the head on `y` against the targets, over the
/// steps from [`MSE_SKIP`] on.
fn head_mse(head: &Head, y: &[f32], h: usize) -> f64 {
    let outs = head.b.len();
    let mut sum = 0.0f64;
    let steps = y.len() / h;
    if steps <= MSE_SKIP {
        return f64::NAN;
    }
    for s in MSE_SKIP..steps {
        let ys = &y[s * h..][..h];
        for o in 0..outs {
            let p = head.b[o] as f64
                + head.w[o * h..][..h]
                    .iter()
                    .zip(ys)
                    .map(|(w, v)| *w as f64 * *v as f64)
                    .sum::<f64>();
            let d = p - head.target[s * outs + o] as f64;
            sum += d * d;
        }
    }
    sum / ((steps - MSE_SKIP) * outs) as f64
}

fn measure(case: &Case, precisions: &[WeightPrecision]) -> Res<Vec<Row>> {
    let h = case.spec.hidden_size;
    let t = case.steps;
    // Drift windows: steps 100–200 and 900–1000 of 1000, scaled to T.
    let (e0, e1, l0) = (t / 10, t / 5, t * 9 / 10);
    let f32o = run(case, WeightPrecision::F32)?;
    let y64 = oracle(case, WeightPrecision::F32)?;
    let mut rows = Vec::new();
    for &p in precisions {
        let o = if p == WeightPrecision::F32 {
            None
        } else {
            Some(run(case, p)?)
        };
        let o = o.as_ref().unwrap_or(&f32o);
        let y64r = if p == WeightPrecision::F32 {
            None
        } else {
            Some(oracle(case, p)?)
        };
        let y64r = y64r.as_ref().unwrap_or(&y64);
        rows.push(Row {
            cell: case.cell,
            h,
            source: case.source.clone(),
            precision: p,
            steps: t,
            y_f32: max_diff(&o.y, &f32o.y),
            h_f32: max_diff(&o.h_n, &f32o.h_n),
            c_f32: (!o.c.is_empty()).then(|| max_diff(&o.c, &f32o.c)),
            y_f64: max_diff64(&o.y, &y64),
            y_f64r: max_diff64(&o.y, y64r),
            early: max_diff64(&o.y[e0 * h..e1 * h], &y64[e0 * h..e1 * h]),
            late: max_diff64(&o.y[l0 * h..], &y64[l0 * h..]),
            mse: case.head.as_ref().map(|hd| head_mse(hd, &o.y, h)),
        });
    }
    Ok(rows)
}

fn e(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else {
        format!("{v:.1e}")
    }
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| model | cell | H | T | precision | y−y32 | hT−h32 | c−c32 | y−y64 | y−y64r | drift | MSE |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let drift = if r.early > 0.0 {
            format!("{:.2}", r.late / r.early)
        } else {
            "—".into()
        };
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.source,
            r.cell,
            r.h,
            r.steps,
            r.precision.name(),
            e(r.y_f32),
            e(r.h_f32),
            r.c_f32.map_or("—".into(), e),
            e(r.y_f64),
            e(r.y_f64r),
            drift,
            r.mse.map_or("—".into(), |m| format!("{m:.6}")),
        );
    }
    s
}

fn json(rows: &[Row]) -> String {
    let v: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "model": r.source, "cell": r.cell, "hidden": r.h, "steps": r.steps,
                "precision": r.precision.name(),
                "max_abs_y_vs_f32": r.y_f32, "max_abs_hT_vs_f32": r.h_f32,
                "max_abs_c_vs_f32": r.c_f32, "max_abs_y_vs_f64": r.y_f64,
                "max_abs_y_vs_f64_rounded": r.y_f64r,
                "max_abs_y_vs_f64_early": r.early, "max_abs_y_vs_f64_late": r.late,
                "heldout_mse": r.mse,
            })
        })
        .collect();
    serde_json::to_string_pretty(&v).expect("plain values serialise")
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("precision_accuracy: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let list = |name: &str, default: &str| -> Vec<String> {
        arg(&args, name)
            .unwrap_or(default)
            .split(',')
            .map(str::to_string)
            .collect()
    };
    let num = |name: &str, default: usize| -> Res<usize> {
        arg(&args, name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("{name}: not a number: {v}"))
        })
    };
    let sizes = list("--sizes", "64,256,1024")
        .iter()
        .map(|v| v.parse().map_err(|_| format!("--sizes: not a size: {v}")))
        .collect::<Res<Vec<usize>>>()?;
    let cells: Vec<&'static str> = list("--cells", "lstm,gru")
        .iter()
        .map(|c| match c.as_str() {
            "lstm" => Ok("lstm"),
            "gru" => Ok("gru"),
            o => Err(format!("--cells: unknown cell {o} (lstm, gru)")),
        })
        .collect::<Res<_>>()?;
    let steps = num("--steps", 1000)?;
    let big_steps = num("--big-steps", steps)?;
    let mut precisions = vec![WeightPrecision::F32];
    for p in list("--precisions", "f16,bf16,i8w,i8") {
        let p = WeightPrecision::from_name(&p)
            .ok_or_else(|| format!("--precisions: unknown precision {p}"))?;
        if !precisions.contains(&p) {
            precisions.push(p);
        }
    }
    let models: PathBuf = arg(&args, "--models").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models"),
        PathBuf::from,
    );
    let mut cases = Vec::new();
    if !args.iter().any(|a| a == "--no-random") {
        for &c in &cells {
            for &h in &sizes {
                cases.push(random_case(c, h, if h >= 1024 { big_steps } else { steps }));
            }
        }
    }
    if !args.iter().any(|a| a == "--no-trained") {
        for &c in &cells {
            cases.push(trained_case(&models, c)?);
        }
    }
    eprintln!(
        "ISA {}; precisions {}",
        Isa::detect().name(),
        precisions
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut rows = Vec::new();
    for c in &cases {
        rows.extend(measure(c, &precisions)?);
    }
    print!("{}", table(&rows));
    if let Some(path) = arg(&args, "--json") {
        std::fs::write(path, json(&rows)).map_err(|e| format!("{path}: {e}"))?;
        eprintln!("wrote {path}");
    }
    Ok(())
}
