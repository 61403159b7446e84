//! Identifiers: random 64-hex-digit ids (as Docker makes them) and generated names.

/// A new random 256-bit identifier in lower-case hex, as Docker uses for containers and execs.
pub fn new_id() -> String {
    let mut buf = [0u8; 32];
    // getrandom only fails when the kernel has no entropy source at all; fall back to a
    // time-and-pid mix so that id creation never aborts the daemon.
    if getrandom::getrandom(&mut buf).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = t ^ (u128::from(std::process::id()) << 64);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
        }
    }
    hex::encode(buf)
}

/// The 12-character short form shown by `ps`.
pub fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

const LEFT: &[&str] = &[
    "brave", "calm", "eager", "fond", "gentle", "happy", "jolly", "keen", "lucid", "merry",
    "nimble", "quiet", "rapid", "sharp", "steady", "tender", "vivid", "wise", "zealous", "bold",
];
const RIGHT: &[&str] = &[
    "albattani",
    "bell",
    "curie",
    "darwin",
    "euler",
    "fermi",
    "galois",
    "hopper",
    "hypatia",
    "kepler",
    "lovelace",
    "mayer",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "turing",
    "volta",
    "wozniak",
];

/// A generated container name such as `eager_turing`, from the bytes of an id.
pub fn generated_name(id: &str, attempt: usize) -> String {
    let b = hex::decode(&id[..8.min(id.len())]).unwrap_or_else(|_| vec![0; 4]);
    let l = LEFT[usize::from(b.first().copied().unwrap_or(0)) % LEFT.len()];
    let r = RIGHT[usize::from(b.get(1).copied().unwrap_or(0)) % RIGHT.len()];
    if attempt == 0 {
        format!("{l}_{r}")
    } else {
        format!("{l}_{r}{attempt}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(short(&a).len(), 12);
    }
}
