//! Cutting fuzz input into reads, shared by the differential targets.

/// `input` cut at the points `cuts` name (each taken modulo the input's
/// length plus one, then sorted): `cuts.len() + 1` chunks, some possibly
/// empty, that concatenate to `input`.
pub fn cut<'a>(input: &'a [u8], cuts: &[u8]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) % (input.len() + 1))
        .collect();
    at.sort_unstable();
    let mut chunks = Vec::with_capacity(at.len() + 1);
    let mut start = 0;
    for end in at {
        chunks.push(&input[start..end]);
        start = end;
    }
    chunks.push(&input[start..]);
    chunks
}
