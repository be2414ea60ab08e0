//! Task-level `cpu` and `memory`: unit text to the plain numbers ECS stores.
//!
//! * cpu: `"1024"` (CPU units) or `"<n> vCPU"` / `"<n>vcpu"` (any case, decimals such as `".25"`)
//!   → units = n × 1024, which must come out whole.
//! * memory: `"512"` (MiB), `"<n> GB"` / `"<n> GiB"` (× 1024, ECS's GB is GiB) or
//!   `"<n> MiB"` / `"<n> MB"` (as is) → whole MiB.
//!
//! JSON numbers are not accepted for these two fields: the API types them as strings and the aws
//! CLI refuses `"cpu": 256` with a type error, so Berth does the same (the parser reports it).
//! Pure functions; no warnings, no model types.

/// ECS's task-level CPU range in units (0.125 … 192 vCPU).
pub(crate) const TASK_CPU_UNITS_MIN: u64 = 128;
pub(crate) const TASK_CPU_UNITS_MAX: u64 = 196_608;
/// Upper bound for task memory (MiB) so later arithmetic cannot overflow: 4 TiB, beyond any host.
pub(crate) const TASK_MEMORY_MIB_MAX: u64 = 4 * 1024 * 1024;

/// `"1 vCPU"` → `1024`; `"512"` → `512`. Errors are a phrase for "cpu: …".
pub(crate) fn cpu_units(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let (number, factor) =
        if let Some(n) = strip_unit(&t, &["vcpus", "vcpu"]) { (n, 1024) } else { (t.as_str(), 1) };
    let units = scaled_whole(number, factor).ok_or_else(|| {
        format!(
            "\"{text}\" is not CPU units (\"1024\") or vCPUs (\"1 vCPU\", \".25 vcpu\") \
             giving a whole number of units"
        )
    })?;
    if !(TASK_CPU_UNITS_MIN..=TASK_CPU_UNITS_MAX).contains(&units) {
        return Err(format!(
            "\"{text}\" is {units} CPU units; ECS allows {TASK_CPU_UNITS_MIN}..{TASK_CPU_UNITS_MAX}"
        ));
    }
    Ok(units)
}

/// `"3 GB"` → `3072`; `"512"` → `512`; `"2048 MiB"` → `2048`.
pub(crate) fn memory_mib(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let (number, factor) = if let Some(n) = strip_unit(&t, &["gib", "gb"]) {
        (n, 1024)
    } else if let Some(n) = strip_unit(&t, &["mib", "mb"]) {
        (n, 1)
    } else {
        (t.as_str(), 1)
    };
    let mib = scaled_whole(number, factor).ok_or_else(|| {
        format!(
            "\"{text}\" is not MiB (\"512\") or GB (\"1 GB\", \".5 gb\") giving a whole number of MiB"
        )
    })?;
    if mib == 0 || mib > TASK_MEMORY_MIB_MAX {
        return Err(format!("\"{text}\" is {mib} MiB; it must be 1..{TASK_MEMORY_MIB_MAX}"));
    }
    Ok(mib)
}

/// `"2 gb"` with units `["gb"]` → `Some("2")` (the space before the unit is optional).
fn strip_unit<'t>(t: &'t str, units: &[&str]) -> Option<&'t str> {
    units.iter().find_map(|u| t.strip_suffix(u)).map(str::trim_end)
}

/// `number × factor` if `number` is a plain decimal ("2", "0.5", ".25", "1.") and the product
/// is whole. Exact: no floating point.
fn scaled_whole(number: &str, factor: u64) -> Option<u64> {
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    if int_part.len() > 12 || frac_part.len() > 12 {
        return None;
    }
    let int: u128 = if int_part.is_empty() { 0 } else { int_part.parse().ok()? };
    let frac: u128 = if frac_part.is_empty() { 0 } else { frac_part.parse().ok()? };
    let scale = 10u128.pow(u32::try_from(frac_part.len()).ok()?);
    let numerator = (int * scale + frac) * u128::from(factor);
    if !numerator.is_multiple_of(scale) {
        return None;
    }
    u64::try_from(numerator / scale).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_text_normalises_to_units() {
        for (text, units) in [
            ("1024", 1024),
            ("512", 512),
            ("1 vCPU", 1024),
            ("1 vcpu", 1024),
            ("1vCPU", 1024),
            (".25 vcpu", 256),
            ("0.5 vCPU", 512),
            ("2 vCPUs", 2048),
            (" 4 VCPU ", 4096),
            ("0.125 vcpu", 128),
        ] {
            assert_eq!(cpu_units(text), Ok(units), "{text}");
        }
    }

    #[test]
    fn cpu_text_rejects_fractions_of_units_and_out_of_range() {
        for text in ["0.3 vcpu", "abc", "", "vcpu", "-1", "1.5", "1e3", "64", "200000", "1 cpu"] {
            assert!(cpu_units(text).is_err(), "{text} should fail");
        }
    }

    #[test]
    fn memory_text_normalises_to_mib() {
        for (text, mib) in [
            ("512", 512),
            ("3 GB", 3072),
            ("3GB", 3072),
            (".5 gb", 512),
            ("1GB", 1024),
            ("1 GiB", 1024),
            ("2048 MiB", 2048),
            ("2048MB", 2048),
        ] {
            assert_eq!(memory_mib(text), Ok(mib), "{text}");
        }
    }

    #[test]
    fn memory_text_rejects_garbage() {
        for text in ["0", "0.1 gb", "1.5", "lots", "1 TB", "-5", "99999999999999"] {
            assert!(memory_mib(text).is_err(), "{text} should fail");
        }
    }
}
