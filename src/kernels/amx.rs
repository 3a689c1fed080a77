//! The `i8` multi-column GEMM on AMX-INT8 tiles (`tdpbusd`), for the
//! integer dot `avx512-amx` (the AVX-512 VNNI kernels with this one
//! operation replaced).
//!
//! `tdpbusd C, A, B` adds to each i32 `C[m][n]` the 64 products
//! `A[m][4j + b] · B[j][4n + b]` (A unsigned bytes, B signed bytes, j < 16,
//! b < 4): A holds 16 columns × 64 k of activations (their words, stored as
//! q + 128 like `vpdpbusd`'s, [`IntDot::WORD_XOR`]), B 16 k-quads × 16
//! rows of weights, which is exactly one vector of a k-quad panel
//! (`body_int.rs`) read with the panel's quad stride, and C 16 columns ×
//! 16 rows, one vector of each column's tile. The sums are exact wrapping
//! i32, the same as `vpdpbusd`'s in any order, so this path returns the
//! bits of every other integer dot.
//!
//! The blocking ([`gemm_chunk`]) is written once over [`Tiles`]: the
//! native tile registers ([`Amx`], inline assembly: the AMX intrinsics
//! are unstable in Rust) and a portable emulation of the same geometry and
//! integer semantics ([`TileEmu`]), which the tests run on every CPU.
//!
//! Linux hands out the 8 KiB of tile state only on request
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, once per
//! process, made by [`available`]); elsewhere AMX is reported absent.

use super::body::balanced;
use super::body_int::ChunkQ;
use super::panel::Nv;

/// Columns of one tile (its rows): the AMX path takes groups of up to 16.
pub(crate) const TILE_COLS: usize = 16;

/// Below this many quads of k (K = 512) the `vpdpbusd` micro-kernel is
/// as fast or faster: with K = 256 the weights of a model sit in L2 and
/// the tiles' staging does not pay (measured: LSTM level, GRUs 5–12 %
/// slower at H = 256 with 16 columns; 4–18 % faster at H = 512).
pub(crate) const MIN_QUADS: usize = 128;

/// Below this many columns the `vpdpbusd` micro-kernel is faster: a tile
/// product costs the same for 1 and 16 columns, and on the Intel Xeon
/// measured (NOTES.md, eleventh session) one `tileloadd` of 1 KiB takes
/// ~55 cycles, `tdpbusd` ~19, so a product with its B load costs about as
/// much as 11 columns of `vpdpbusd`.
pub(crate) const MIN_COLS: usize = 12;

/// Bytes of one tile: 16 rows of 64.
const TILE_BYTES: usize = 1024;

/// Quads (4 k) of one tile product.
const QUADS: usize = 16;

/// Tile registers, the same geometry on the CPU and in the emulation:
/// eight tiles of 16 rows × 64 bytes.
pub(crate) trait Tiles {
    /// Tile `T` ← 16 rows of 64 bytes, row r at `src[r · stride..]`.
    fn load<const T: usize>(&mut self, src: &[u8], stride: usize);
    /// 16 rows of 64 bytes of tile `T` → `dst[r · stride..]`.
    fn store<const T: usize>(&mut self, dst: &mut [u8], stride: usize);
    /// `C[m][n] += Σ_{j<16, b<4} A[m][4j + b] · B[j][4n + b]` (u8 · i8,
    /// wrapping i32), tiles C, A, B.
    fn dpbusd<const C: usize, const A: usize, const B: usize>(&mut self);
}

/// Bytes a 16-row access with `stride` spans.
#[inline(always)]
fn span(stride: usize) -> usize {
    15 * stride + 64
}

/// The portable emulation of the tile registers (8 KiB, plain arrays),
/// for the tests.
#[cfg(test)]
pub(crate) struct TileEmu([[u8; TILE_BYTES]; 8]);

#[cfg(test)]
impl TileEmu {
    pub(crate) fn new() -> TileEmu {
        TileEmu([[0; TILE_BYTES]; 8])
    }
}

#[cfg(test)]
impl Tiles for TileEmu {
    fn load<const T: usize>(&mut self, src: &[u8], stride: usize) {
        assert!(src.len() >= span(stride));
        for r in 0..16 {
            self.0[T][r * 64..(r + 1) * 64].copy_from_slice(&src[r * stride..r * stride + 64]);
        }
    }
    fn store<const T: usize>(&mut self, dst: &mut [u8], stride: usize) {
        assert!(dst.len() >= span(stride));
        for r in 0..16 {
            dst[r * stride..r * stride + 64].copy_from_slice(&self.0[T][r * 64..(r + 1) * 64]);
        }
    }
    fn dpbusd<const C: usize, const A: usize, const B: usize>(&mut self) {
        let (a, b) = (self.0[A], self.0[B]);
        let c = &mut self.0[C];
        for m in 0..16 {
            for n in 0..16 {
                let o = m * 64 + n * 4;
                let mut s = i32::from_le_bytes([c[o], c[o + 1], c[o + 2], c[o + 3]]);
                for j in 0..16 {
                    for k in 0..4 {
                        let x = i32::from(a[m * 64 + 4 * j + k]);
                        let w = i32::from(b[j * 64 + 4 * n + k] as i8);
                        s = s.wrapping_add(x * w);
                    }
                }
                c[o..o + 4].copy_from_slice(&s.to_le_bytes());
            }
        }
    }
}

/// Whether this CPU and OS run AMX-INT8: CPUID (AMX-TILE, AMX-INT8,
/// OSXSAVE), XCR0 (the OS saves tile config and data), and Linux granted
/// this process the tile data. Checked once.
pub(crate) fn available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    #[allow(unused_unsafe)]
    // SAFETY: CPUID exists on every x86-64 CPU; leaf 7 is read only when
    // leaf 0 says it exists.
    let (l1, l7) = unsafe {
        if __cpuid(0).eax < 7 {
            return false;
        }
        (__cpuid(1), __cpuid_count(7, 0))
    };
    let osxsave = l1.ecx >> 27 & 1 == 1;
    let (tile, int8) = (l7.edx >> 24 & 1 == 1, l7.edx >> 25 & 1 == 1);
    if !(osxsave && tile && int8) {
        return false;
    }
    let (lo, _hi): (u32, u32);
    // SAFETY: XGETBV with ECX = 0 is valid when CPUID says OSXSAVE (checked
    // above); it only reads XCR0 into EDX:EAX.
    unsafe {
        std::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") _hi,
            options(nomem, nostack, preserves_flags));
    }
    // XTILECFG (bit 17) and XTILEDATA (bit 18) enabled by the OS.
    if lo >> 17 & 3 != 3 {
        return false;
    }
    request_tile_data()
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> bool {
    false
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0`.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_tile_data() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let r: i64;
    // SAFETY: the arch_prctl system call with this request only changes
    // which XSAVE features the process may use (it touches no memory of
    // ours); the syscall instruction clobbers rcx and r11, declared.
    unsafe {
        std::arch::asm!("syscall",
            inlateout("rax") SYS_ARCH_PRCTL => r,
            in("rdi") ARCH_REQ_XCOMP_PERM, in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    r == 0
}

#[cfg(all(target_arch = "x86_64", not(target_os = "linux")))]
fn request_tile_data() -> bool {
    false
}

/// The tile registers of this CPU while a [`Session`] of this thread has
/// them configured.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Amx(());

#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
struct TileCfg([u8; 64]);

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// Whether this thread's tiles hold [`Amx::begin`]'s configuration.
    static CONFIGURED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// While it lives, this thread's tiles are configured (one `ldtilecfg` per
/// kernel call: it and the `tilerelease` cost ~0.1 µs together, too much
/// per chunk); the drop releases them.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Session(());

#[cfg(target_arch = "x86_64")]
impl Session {
    /// Configures the tiles (palette 1, every tile 16 rows × 64 bytes), or
    /// `None` without AMX or when this thread's tiles are already ours.
    #[inline(always)]
    pub(crate) fn begin() -> Option<Session> {
        if !available() || CONFIGURED.get() {
            return None;
        }
        let mut cfg = TileCfg([0; 64]);
        cfg.0[0] = 1;
        for t in 0..8 {
            cfg.0[16 + 2 * t] = 64;
            cfg.0[48 + t] = 16;
        }
        // SAFETY: AMX is usable by this process (`available`: CPUID, XCR0,
        // the OS's permission); `cfg` is a valid palette-1 configuration of
        // 64 readable, 64-byte aligned bytes.
        unsafe {
            std::arch::asm!("ldtilecfg [{0}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
        }
        CONFIGURED.set(true);
        Some(Session(()))
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for Session {
    #[inline(always)]
    fn drop(&mut self) {
        CONFIGURED.set(false);
        // SAFETY: AMX is usable (a session exists); TILERELEASE returns
        // the tiles to their init state and touches no memory.
        unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) }
    }
}

#[cfg(target_arch = "x86_64")]
impl Amx {
    /// The tiles, when a [`Session`] of this thread has configured them.
    #[inline(always)]
    pub(crate) fn configured() -> Option<Amx> {
        CONFIGURED.get().then_some(Amx(()))
    }
}

#[cfg(target_arch = "x86_64")]
impl Tiles for Amx {
    #[inline(always)]
    fn load<const T: usize>(&mut self, src: &[u8], stride: usize) {
        assert!(T < 8 && src.len() >= span(stride));
        // SAFETY: the token proves AMX is usable and configured by this
        // thread's session (16 rows of 64 bytes per tile); the 16 rows read lie in `src` (checked above).
        unsafe {
            std::arch::asm!("tileloadd tmm{t}, [{p} + {s} * 1]", t = const T,
                p = in(reg) src.as_ptr(), s = in(reg) stride, options(nostack, readonly));
        }
    }
    #[inline(always)]
    fn store<const T: usize>(&mut self, dst: &mut [u8], stride: usize) {
        assert!(T < 8 && dst.len() >= span(stride));
        // SAFETY: as in `load`; the 16 rows written lie in the unique
        // borrow `dst` (checked above).
        unsafe {
            std::arch::asm!("tilestored [{p} + {s} * 1], tmm{t}", t = const T,
                p = in(reg) dst.as_mut_ptr(), s = in(reg) stride, options(nostack));
        }
    }
    #[inline(always)]
    fn dpbusd<const C: usize, const A: usize, const B: usize>(&mut self) {
        // SAFETY: AMX-INT8 is usable and configured (token); registers only.
        unsafe {
            std::arch::asm!("tdpbusd tmm{c}, tmm{a}, tmm{b}", c = const C, a = const A,
                b = const B, options(nostack, nomem));
        }
    }
}

/// The bytes of an f32 slice.
#[inline(always)]
fn fbytes(w: &[f32]) -> &[u8] {
    // SAFETY: every f32 is 4 initialised bytes and u8 has alignment 1 and
    // no invalid values, so the memory read as bytes is the same borrow.
    unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<u8>(), 4 * w.len()) }
}

/// The bytes of an f32 slice, mutably.
#[inline(always)]
fn fbytes_mut(w: &mut [f32]) -> &mut [u8] {
    // SAFETY: as in `fbytes`; every byte pattern is a valid f32, so
    // whatever is written leaves valid f32s, and the borrow is unique.
    unsafe { std::slice::from_raw_parts_mut(w.as_mut_ptr().cast::<u8>(), 4 * w.len()) }
}

/// The bytes of an i8 slice.
#[inline(always)]
fn bytes(w: &[i8]) -> &[u8] {
    // SAFETY: i8 and u8 have the same size, alignment and validity (every
    // bit pattern), so the same memory read as u8 is the same borrow.
    unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<u8>(), w.len()) }
}

/// C tiles per pass over a panel's vectors (tiles 0–3); A is tile 4, B
/// tiles 5–7 in turn.
const PASS: usize = 4;

/// [`ChunkQ`] on tiles, for any number of columns (groups of
/// [`TILE_COLS`]) and any range of quads: the same sums as
/// `body_int::gemm_block_q`. Per group, each pass of up to [`PASS`] panel
/// vectors loads its C tiles from the columns' tiles once, then for each
/// k-chunk of `KQ` quads stages the columns' words into A blocks (16
/// columns × 16 quads) and adds every A block times the panel's B block
/// (a tail block of fewer than 16 quads is staged zero-padded), and
/// finally writes C back.
pub(crate) fn gemm_chunk<T: Tiles>(
    t: &mut T,
    c: ChunkQ<'_>,
    words: &[&[f32]],
    tiles: &mut [&mut [f32]],
) {
    const KQ: usize = super::body_int::KQ;
    let ChunkQ {
        panel,
        nv,
        split,
        dst,
        q0,
        q1,
        ..
    } = c;
    let nv = nv.n();
    let blk = nv * 64;
    assert!(q0 <= q1 && words.len() == tiles.len());
    let pan = bytes(&panel[q0 * blk..q1 * blk]);
    let map = |i: usize| if i < split { i } else { dst + i - split };
    // Equal passes (6 vectors: 3 + 3, not 4 + 2): every pass loads all A
    // blocks again, so fewer, fuller passes load less.
    let per = nv.div_ceil(nv.div_ceil(PASS));
    SCRATCH.with_borrow_mut(|sc| {
        let Scratch { a, tail, cst } = sc;
        for g in balanced(words.len(), TILE_COLS) {
            let ts = &mut tiles[g.clone()];
            let ws = &words[g];
            let mut v0 = 0;
            while v0 < nv {
                let vn = (nv - v0).min(per);
                for (v, cs) in cst.iter_mut().enumerate().take(vn) {
                    let o = map(v0 + v) * 16;
                    for (m, tc) in ts.iter().enumerate() {
                        cs[m * 64..(m + 1) * 64].copy_from_slice(fbytes(&tc[o..o + 16]));
                    }
                }
                load_c(t, cst, vn);
                // C stays in the tiles over the whole range; A is staged
                // per k-chunk of KQ quads.
                let mut k0 = q0;
                while k0 < q1 {
                    let k1 = (k0 + KQ).min(q1);
                    let n = k1 - k0;
                    // Rows of A past the group's columns and bytes past the
                    // last quad keep what an earlier chunk left: the first
                    // only reach rows of C that are not written back, the
                    // second meet zero rows of B.
                    for (m, w) in ws.iter().enumerate() {
                        let w = fbytes(&w[k0..k1]);
                        let mut rows = w.chunks_exact(64);
                        for (kb, row) in rows.by_ref().enumerate() {
                            a[kb][m * 64..(m + 1) * 64].copy_from_slice(row);
                        }
                        let r = rows.remainder();
                        if !r.is_empty() {
                            a[w.len() / 64][m * 64..m * 64 + r.len()].copy_from_slice(r);
                        }
                    }
                    for (kb, ab) in a.iter().enumerate().take(n.div_ceil(QUADS)) {
                        t.load::<4>(ab, 64);
                        let rows = (n - kb * QUADS).min(QUADS);
                        for v in 0..vn {
                            let base = ((k0 - q0) + kb * QUADS) * blk + (v0 + v) * 64;
                            if rows == QUADS {
                                b_dot(t, v, &pan[base..], blk);
                            } else {
                                for r in 0..rows {
                                    let s = base + r * blk;
                                    tail[r * 64..(r + 1) * 64].copy_from_slice(&pan[s..s + 64]);
                                }
                                tail[rows * 64..].fill(0);
                                b_dot(t, v, &tail[..], 64);
                            }
                        }
                    }
                    k0 = k1;
                }
                store_c(t, cst, vn);
                for (v, cs) in cst.iter().enumerate().take(vn) {
                    let o = map(v0 + v) * 16;
                    for (m, tc) in ts.iter_mut().enumerate() {
                        fbytes_mut(&mut tc[o..o + 16]).copy_from_slice(&cs[m * 64..(m + 1) * 64]);
                    }
                }
                v0 += vn;
            }
        }
    });
}

/// A blocks of one chunk, a zero-padded tail block of B, C staging.
struct Scratch {
    a: [[u8; TILE_BYTES]; super::body_int::KQ / QUADS],
    tail: [u8; TILE_BYTES],
    cst: [[u8; TILE_BYTES]; PASS],
}

thread_local! {
    /// Per-thread staging (9 KiB, zeroed once: a stack array would be
    /// zeroed on every call, ~7 % of a 16-stream GRU step).
    static SCRATCH: std::cell::RefCell<Scratch> = const {
        std::cell::RefCell::new(Scratch {
            a: [[0; TILE_BYTES]; super::body_int::KQ / QUADS],
            tail: [0; TILE_BYTES],
            cst: [[0; TILE_BYTES]; PASS],
        })
    };
}

#[inline(always)]
fn load_c<T: Tiles>(t: &mut T, cst: &[[u8; TILE_BYTES]; PASS], vn: usize) {
    t.load::<0>(&cst[0], 64);
    if vn > 1 {
        t.load::<1>(&cst[1], 64);
    }
    if vn > 2 {
        t.load::<2>(&cst[2], 64);
    }
    if vn > 3 {
        t.load::<3>(&cst[3], 64);
    }
}

#[inline(always)]
fn store_c<T: Tiles>(t: &mut T, cst: &mut [[u8; TILE_BYTES]; PASS], vn: usize) {
    t.store::<0>(&mut cst[0], 64);
    if vn > 1 {
        t.store::<1>(&mut cst[1], 64);
    }
    if vn > 2 {
        t.store::<2>(&mut cst[2], 64);
    }
    if vn > 3 {
        t.store::<3>(&mut cst[3], 64);
    }
}

/// Loads the B block of pass vector `v` (rows `stride` apart) into tile
/// 5 + v mod 3 and adds A (tile 4) times it into C tile `v`.
#[inline(always)]
fn b_dot<T: Tiles>(t: &mut T, v: usize, src: &[u8], stride: usize) {
    match v {
        0 => {
            t.load::<5>(src, stride);
            t.dpbusd::<0, 4, 5>();
        }
        1 => {
            t.load::<6>(src, stride);
            t.dpbusd::<1, 4, 6>();
        }
        2 => {
            t.load::<7>(src, stride);
            t.dpbusd::<2, 4, 7>();
        }
        _ => {
            t.load::<5>(src, stride);
            t.dpbusd::<3, 4, 5>();
        }
    }
}

/// Compile-time check that every panel geometry fits the passes.
const _: () = assert!(Nv::V8.n() <= 2 * PASS);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::body_int::dpbusd_lane;
    use crate::test_rng::Rng;

    /// The chunk by the definition, lane by lane.
    fn reference(c: ChunkQ<'_>, words: &[&[f32]], tiles: &mut [Vec<f32>]) {
        let nv = c.nv.n();
        let blk = nv * 64;
        let map = |i: usize| if i < c.split { i } else { c.dst + i - c.split };
        for (w, tc) in words.iter().zip(tiles.iter_mut()) {
            for v in 0..nv {
                for lane in 0..16 {
                    let o = map(v) * 16 + lane;
                    let mut s = tc[o].to_bits() as i32;
                    for j in c.q0..c.q1 {
                        let a = w[j].to_bits().to_le_bytes();
                        let p = j * blk + v * 64 + lane * 4;
                        s = dpbusd_lane(s, a, &c.panel[p..p + 4]);
                    }
                    tc[o] = f32::from_bits(s as u32);
                }
            }
        }
    }

    fn check<T: Tiles>(t: &mut T, name: &str) {
        let mut rng = Rng(0x616d78);
        let mut below = |n: usize| (rng.next() % n as u64) as usize;
        let kq = crate::kernels::body_int::KQ;
        for case in 0..60 {
            let nv = [Nv::V4, Nv::V6, Nv::V8][case % 3];
            let ncols = 1 + case % 24;
            let quads = 1 + (case * 37) % (3 * kq);
            let q0 = if case % 2 == 0 { 0 } else { quads / 3 };
            let q1 = if case % 3 == 1 {
                quads
            } else {
                (q0 + kq).min(quads)
            }
            .max(q0 + 1);
            let extreme = case % 5 == 0;
            let panel: Vec<i8> = (0..quads * nv.n() * 64)
                .map(|_| {
                    if extreme {
                        [-127i8, 127][below(2)]
                    } else {
                        (below(255) as i32 - 127) as i8
                    }
                })
                .collect();
            let words: Vec<Vec<f32>> = (0..ncols)
                .map(|_| {
                    (0..quads)
                        .map(|_| {
                            let b: [u8; 4] = std::array::from_fn(|_| {
                                if extreme {
                                    [1u8, 255][below(2)]
                                } else {
                                    below(256) as u8
                                }
                            });
                            f32::from_bits(u32::from_le_bytes(b))
                        })
                        .collect()
                })
                .collect();
            let (split, dst) = if nv == Nv::V8 {
                (8, 0)
            } else {
                (nv.n() / 2, 8)
            };
            let init: Vec<Vec<f32>> = (0..ncols)
                .map(|_| {
                    (0..16 * 16)
                        .map(|_| f32::from_bits(below(1 << 31) as u32))
                        .collect()
                })
                .collect();
            let c = ChunkQ {
                panel: &panel,
                nv,
                split,
                dst,
                q0,
                q1,
                quads,
            };
            let ws: Vec<&[f32]> = words.iter().map(|w| &w[..]).collect();
            let mut want = init.clone();
            reference(c, &ws, &mut want);
            let mut got = init.clone();
            let mut ts: Vec<&mut [f32]> = got.iter_mut().map(|v| &mut v[..]).collect();
            gemm_chunk(t, c, &ws, &mut ts);
            for (g, w) in got.iter().zip(&want) {
                let (g, w): (Vec<u32>, Vec<u32>) = (
                    g.iter().map(|x| x.to_bits()).collect(),
                    w.iter().map(|x| x.to_bits()).collect(),
                );
                assert_eq!(
                    g, w,
                    "{name}: case {case} nv {nv:?} cols {ncols} q {q0}..{q1}"
                );
            }
        }
    }

    #[test]
    fn tile_chunks_are_the_exact_sums_emulated() {
        check(&mut TileEmu::new(), "emulation");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn tile_chunks_are_the_exact_sums_on_amx() {
        let Some(_s) = Session::begin() else {
            eprintln!("no AMX-INT8 here: the native tile path is not run");
            return;
        };
        check(&mut Amx::configured().unwrap(), "amx");
    }
}
