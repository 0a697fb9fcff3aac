//! Kubernetes resource quantities (`500m`, `2`, `1.5Gi`, `128M`) as plain numbers, for capacity
//! arithmetic: CPU in millicores, everything else in bytes (or units).

/// Millicores from a CPU quantity.
pub fn cpu_millis(quantity: &str) -> Option<u64> {
    let q = quantity.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<f64>().ok().map(|v| v.ceil() as u64);
    }
    q.parse::<f64>().ok().map(|v| (v * 1000.0).ceil() as u64)
}

/// Bytes from a memory quantity.
pub fn bytes(quantity: &str) -> Option<u64> {
    let q = quantity.trim();
    const SUFFIXES: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, scale) in SUFFIXES {
        if let Some(number) = q.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|v| (v * scale).ceil() as u64);
        }
    }
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<f64>().ok().map(|v| (v / 1000.0).ceil() as u64);
    }
    q.parse::<f64>().ok().map(|v| v.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu() {
        assert_eq!(cpu_millis("500m"), Some(500));
        assert_eq!(cpu_millis("2"), Some(2000));
        assert_eq!(cpu_millis("0.1"), Some(100));
        assert_eq!(cpu_millis("x"), None);
    }

    #[test]
    fn memory() {
        assert_eq!(bytes("2Gi"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(bytes("128M"), Some(128_000_000));
        assert_eq!(bytes("1.5Ki"), Some(1536));
        assert_eq!(bytes("1000"), Some(1000));
        assert_eq!(bytes("256Mi"), Some(268_435_456));
        assert_eq!(bytes("lots"), None);
    }
}
