//! What both fuzz targets do with their input: pick an option set by the
//! input's last byte, and run whatever model loads.

use rnncell::{Model, Sequence, SequenceOutput};

/// The option set the input's last byte picks (every set is reachable
/// from every file: in a valid file the last byte is tensor data or a name).
pub fn pick<T>(data: &[u8], all: &[T]) -> usize {
    data.last().map_or(0, |&b| usize::from(b) % all.len())
}

/// Runs a loaded model over two steps of batch 1: it must not fail. The
/// sizes come from tensors that are in the input, so the buffers are small.
pub fn runs(model: &Model) {
    let sp = *model.spec();
    let x: Vec<f32> = (0..2 * sp.input_size)
        .map(|i| (i as f32 * 0.7).sin())
        .collect();
    let mut y = vec![0.0f32; 2 * sp.output_size()];
    model
        .run(
            &Sequence::new(&x, 2, 1),
            &mut SequenceOutput {
                output: &mut y,
                h_n: None,
                c_n: None,
            },
        )
        .expect("a loaded model runs");
}
