//! The CPU's vector and matrix instructions that decide ONNX Runtime's kernels (fp32 AVX2 or
//! AVX-512 blocks, int8 VNNI dot products, AMX tiles). Logged at start-up, so that a slow
//! instance can be told apart from a slow host, and part of the optimised-model cache key,
//! since an optimised graph is laid out for the CPU it was made on.

/// The instruction set extensions that matter here, in the kernel's own `/proc/cpuinfo` names.
const RELEVANT: &[&str] = &[
    // x86-64
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    // AArch64
    "asimd",
    "asimddp",
    "i8mm",
    "bf16",
    "sve",
];

/// The relevant extensions this machine has, in `RELEVANT`'s order; empty where the kernel does
/// not say (not Linux).
pub fn features() -> Vec<&'static str> {
    std::fs::read_to_string("/proc/cpuinfo").map(|text| relevant_features(&text)).unwrap_or_default()
}

fn relevant_features(cpuinfo: &str) -> Vec<&'static str> {
    // x86 lists them as `flags`, AArch64 as `Features`; the first processor speaks for all.
    let listed: Vec<&str> = cpuinfo
        .lines()
        .find(|line| line.starts_with("flags") || line.starts_with("Features"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, flags)| flags.split_whitespace().collect())
        .unwrap_or_default();
    RELEVANT.iter().copied().filter(|feature| listed.contains(feature)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_relevant_flags_from_either_architecture() {
        let x86 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni amx_int8 amx_tile\n";
        assert_eq!(relevant_features(x86), ["avx2", "fma", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"]);
        let arm = "processor\t: 0\nFeatures\t: fp asimd asimddp i8mm\n";
        assert_eq!(relevant_features(arm), ["asimd", "asimddp", "i8mm"]);
        assert!(relevant_features("").is_empty());
    }
}
