//! The vector instruction sets the register tiles are written for, and which of them this CPU
//! has: one owner of the CPU-feature checks for the linear layers' tiles and the direct
//! convolution.

/// The vector instruction sets with register tiles.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Isa {
    /// 16-lane vectors and lane masks (Intel Xeon, AMD Zen 4 and 5).
    Avx512,
    /// 8-lane vectors with fused multiply-add (AMD Zen 1 to 3, Intel from Haswell without
    /// AVX-512).
    Avx2,
}

impl Isa {
    /// Every set, best first.
    pub(crate) const ALL: [Self; 2] = [Self::Avx512, Self::Avx2];

    /// The best set this CPU has, if any.
    pub(crate) fn best() -> Option<Self> {
        Self::ALL.into_iter().find(|isa| isa.detected())
    }

    /// Whether this CPU has the set (a cached flag after the first call).
    pub(crate) fn detected(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Self::Avx512 => has!("avx512f"),
                Self::Avx2 => has!("avx2") && has!("fma"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }
}
