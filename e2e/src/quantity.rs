//! Kubernetes resource quantities (`128Mi`, `500m`, `1.5`, `1e3`), the one parser of the
//! harness: resource limits for the cgroups, `resourceFieldRef` values for the environment.
//!
//! The grammar of `k8s.io/apimachinery/pkg/api/resource`: a signed decimal number followed by
//! a binary suffix (`Ki` .. `Ei`), a decimal suffix (`n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`,
//! `E`) or an exponent (`e3`, `E-2`).

use anyhow::{Result, anyhow, bail};

/// The quantity's value as a float (precise enough for limits and divisors).
pub fn parse(q: &str) -> Result<f64> {
    let q = q.trim();
    let split = q
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || ((c == '+' || c == '-') && i == 0)))
        .map_or(q.len(), |(i, _)| i);
    let (number, suffix) = q.split_at(split);
    if number.is_empty() || number == "+" || number == "-" {
        bail!("quantity {q:?} does not start with a number");
    }
    let number: f64 = number
        .parse()
        .map_err(|_| anyhow!("quantity {q:?}: {number:?} is not a number"))?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            let e: i32 = exponent[1..]
                .parse()
                .map_err(|_| anyhow!("quantity {q:?}: unsupported suffix {suffix:?}"))?;
            10f64.powi(e)
        }
        _ => bail!("quantity {q:?}: unsupported suffix {suffix:?}"),
    };
    Ok(number * factor)
}

/// A memory quantity in bytes (rounded up, as the API server rounds to whole bytes).
pub fn bytes(q: &str) -> Result<u64> {
    let v = parse(q)?;
    if v < 0.0 {
        bail!("memory quantity {q:?} is negative");
    }
    Ok(v.ceil() as u64)
}

/// A CPU quantity in millicores (rounded up, as the API server keeps at most milli precision).
pub fn millicores(q: &str) -> Result<u64> {
    let v = parse(q)?;
    if v < 0.0 {
        bail!("cpu quantity {q:?} is negative");
    }
    Ok((v * 1000.0).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_decimal_and_exponent_suffixes_scale_the_number() {
        assert_eq!(bytes("128Mi").expect("Mi"), 128 * 1024 * 1024);
        assert_eq!(bytes("4Mi").expect("Mi"), 4 << 20);
        assert_eq!(bytes("1G").expect("G"), 1_000_000_000);
        assert_eq!(bytes("1e3").expect("e3"), 1000);
        assert_eq!(bytes("1.5Ki").expect("Ki"), 1536);
        assert_eq!(millicores("500m").expect("m"), 500);
        assert_eq!(millicores("2").expect("plain"), 2000);
        assert_eq!(millicores("0.25").expect("decimal"), 250);
        assert_eq!(parse("250m").expect("m"), 0.25);
    }

    #[test]
    fn malformed_quantities_are_errors_that_name_the_value() {
        for bad in ["", "Mi", "12Qi", "1..2", "-", "1e"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        assert!(bytes("-1Mi").is_err());
    }
}
