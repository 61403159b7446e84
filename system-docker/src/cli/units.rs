//! Human-readable sizes, durations and times, and the parsers for size and time flags, each
//! matching what the docker CLI prints or accepts (its `go-units` and `timetypes` packages).

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY_UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/// A size in decimal units with three significant digits, as `docker images` shows it
/// (`4.26MB`, `0B`, `123kB`).
pub fn human_size(bytes: f64) -> String {
    let (value, unit) = scale(bytes, 1000.0, &DECIMAL_UNITS);
    format!("{}{unit}", format_g(value, 3))
}

/// A size in binary units with four significant digits, as `docker info` shows memory
/// (`31.06GiB`).
pub fn bytes_size(bytes: f64) -> String {
    let (value, unit) = scale(bytes, 1024.0, &BINARY_UNITS);
    format!("{}{unit}", format_g(value, 4))
}

fn scale(mut size: f64, base: f64, units: &[&'static str]) -> (f64, &'static str) {
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    (size, units[i])
}

/// `x` formatted like Go's `%.<precision>g`: shortest of fixed or exponent notation, trailing
/// zeros removed (so 999.9 with precision 3 becomes `1e+03`, as docker prints it).
pub fn format_g(x: f64, precision: usize) -> String {
    let precision = precision.max(1);
    if x == 0.0 || !x.is_finite() {
        return if x == 0.0 { "0".into() } else { x.to_string() };
    }
    let sci = format!("{:.*e}", precision - 1, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= precision as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip_zeros(mantissa), exp.abs())
    } else {
        let decimals = (precision as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{x:.decimals$}"))
    }
}

fn strip_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// A duration in words as docker's `HumanDuration` gives it ("Less than a second",
/// "About a minute", "3 hours", "2 weeks"); `nanos` may be negative (clock skew).
pub fn human_duration(nanos: i64) -> String {
    const SEC: i64 = 1_000_000_000;
    const HOUR: i64 = 3600 * SEC;
    let seconds = nanos / SEC;
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = nanos / (60 * SEC);
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Go's Duration.Round rounds halves away from zero.
    let hours = (nanos + HOUR / 2) / HOUR;
    if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", nanos / HOUR / 24 / 365)
    }
}

/// "N units ago" for a Unix timestamp, measured from `now`.
pub fn time_ago(unix: i64, now: DateTime<Utc>) -> String {
    let nanos = (now.timestamp() - unix)
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(now.timestamp_subsec_nanos()));
    format!("{} ago", human_duration(nanos))
}

/// A Unix time as Go's `time.Time.String()` prints it in local time
/// (`2024-01-02 15:04:05 +0000 UTC`); zones without a known abbreviation repeat the offset,
/// as Go does for unnamed zones.
pub fn go_time_string(unix: i64) -> String {
    let Some(t) = Local.timestamp_opt(unix, 0).single() else {
        return unix.to_string();
    };
    let offset = t.format("%z").to_string();
    let zone = if t.offset().local_minus_utc() == 0 {
        "UTC".to_string()
    } else {
        offset.clone()
    };
    format!("{} {offset} {zone}", t.format("%Y-%m-%d %H:%M:%S"))
}

/// A time in nanoseconds as docker's `RFC3339NanoFixed` layout in local time
/// (`2024-01-01T00:00:00.000000000Z`), used by `events` and `logs -t`.
pub fn rfc3339_nano_fixed(unix_nanos: i64) -> String {
    let t = Local.timestamp_nanos(unix_nanos);
    let zone = if t.offset().local_minus_utc() == 0 {
        "Z".to_string()
    } else {
        t.format("%:z").to_string()
    };
    format!("{}{zone}", t.format("%Y-%m-%dT%H:%M:%S%.9f"))
}

/// Bytes from a memory flag value (`64m`, `1.5g`, `512k`, `1024`), binary multiples as in
/// docker's `RAMInBytes`.
pub fn ram_in_bytes(value: &str) -> Result<i64, String> {
    let invalid = || format!("invalid size: '{value}'");
    let num_end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, rest) = value.split_at(num_end);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(invalid());
    }
    let size: f64 = number.parse().map_err(|_| invalid())?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let mut chars = rest.chars().peekable();
    let mut mult: f64 = 1.0;
    if let Some(&c) = chars.peek() {
        let power = match c.to_ascii_lowercase() {
            'k' => Some(1),
            'm' => Some(2),
            'g' => Some(3),
            't' => Some(4),
            'p' => Some(5),
            _ => None,
        };
        if let Some(p) = power {
            mult = 1024f64.powi(p);
            chars.next();
        }
    }
    if chars.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'i')) {
        chars.next();
    }
    if chars.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'b')) {
        chars.next();
    }
    if chars.next().is_some() {
        return Err(invalid());
    }
    Ok((size * mult) as i64)
}

/// A Go duration string (`10m`, `1h30m`, `1.5s`, `-2h`) in nanoseconds.
pub fn parse_go_duration(value: &str) -> Option<i128> {
    let (negative, mut rest) = match value.as_bytes().first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(num_end);
        if number.is_empty() || number == "." {
            return None;
        }
        let n: f64 = number.parse().ok()?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * scale;
        rest = tail;
    }
    let nanos = total as i128;
    Some(if negative { -nanos } else { nanos })
}

/// A `--since`/`--until` value as the API wants it (Unix seconds, optionally with
/// nanoseconds), like docker's `GetTimestamp`: durations count back from `now`, RFC 3339
/// times and dates are converted, Unix timestamps pass through.
pub fn api_timestamp(value: &str, now: DateTime<Utc>) -> Result<String, String> {
    if value != "0" {
        if let Some(nanos) = parse_go_duration(value) {
            let t = i128::from(now.timestamp()) * 1_000_000_000
                + i128::from(now.timestamp_subsec_nanos())
                - nanos;
            return Ok(t.div_euclid(1_000_000_000).to_string());
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(format!(
            "{}.{:09}",
            t.timestamp(),
            t.timestamp_subsec_nanos()
        ));
    }
    const LOCAL_FORMATS: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H",
        "%Y-%m-%d %H:%M:%S",
    ];
    let naive = LOCAL_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        });
    if let Some(t) = naive.and_then(|n| Local.from_local_datetime(&n).earliest()) {
        return Ok(format!(
            "{}.{:09}",
            t.timestamp(),
            t.timestamp_subsec_nanos()
        ));
    }
    let unix_like = value.split_once('.').map_or_else(
        || is_digits(value),
        |(secs, nanos)| is_digits(secs) && is_digits(nanos),
    );
    if value.contains('-') || !unix_like {
        return Err(format!(
            "failed to parse value as time or duration: \"{value}\""
        ));
    }
    Ok(value.to_string())
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A time from the API as Unix seconds: either a number or an RFC 3339 string (`Created` of
/// image inspect, `State.StartedAt`).
pub fn unix_from_api(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(human_size(1000.0), "1kB");
        assert_eq!(human_size(4_261_000.0), "4.26MB");
        assert_eq!(human_size(123_456_789.0), "123MB");
        assert_eq!(human_size(12_345_678.0), "12.3MB");
        assert_eq!(human_size(999_600.0), "1e+03kB");
        assert_eq!(bytes_size(33_350_000_000.0), "31.06GiB");
        assert_eq!(bytes_size(1024.0 * 1024.0), "1MiB");
    }

    #[test]
    fn go_g_format() {
        assert_eq!(format_g(4.0, 3), "4");
        assert_eq!(format_g(4.1, 3), "4.1");
        assert_eq!(format_g(9.996, 3), "10");
        assert_eq!(format_g(0.0001234, 3), "0.000123");
        assert_eq!(format_g(0.00001234, 3), "1.23e-05");
    }

    #[test]
    fn durations_like_docker() {
        let s = 1_000_000_000i64;
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(-5 * s), "Less than a second");
        assert_eq!(human_duration(s), "1 second");
        assert_eq!(human_duration(59 * s), "59 seconds");
        assert_eq!(human_duration(90 * s), "About a minute");
        assert_eq!(human_duration(120 * s), "2 minutes");
        assert_eq!(human_duration(59 * 60 * s), "59 minutes");
        assert_eq!(human_duration(90 * 60 * s - s), "About an hour");
        assert_eq!(human_duration(90 * 60 * s), "2 hours");
        assert_eq!(human_duration(47 * 3600 * s), "47 hours");
        assert_eq!(human_duration(48 * 3600 * s), "2 days");
        assert_eq!(human_duration(15 * 24 * 3600 * s), "2 weeks");
        assert_eq!(human_duration(70 * 24 * 3600 * s), "2 months");
        assert_eq!(human_duration(800 * 24 * 3600 * s), "2 years");
    }

    #[test]
    fn memory_flag_values() {
        assert_eq!(ram_in_bytes("64m"), Ok(67_108_864));
        assert_eq!(ram_in_bytes("64M"), Ok(67_108_864));
        assert_eq!(ram_in_bytes("64mb"), Ok(67_108_864));
        assert_eq!(ram_in_bytes("64MiB"), Ok(67_108_864));
        assert_eq!(ram_in_bytes("1g"), Ok(1_073_741_824));
        assert_eq!(ram_in_bytes("1.5k"), Ok(1536));
        assert_eq!(ram_in_bytes("512k"), Ok(524_288));
        assert_eq!(ram_in_bytes("100"), Ok(100));
        assert_eq!(ram_in_bytes("100 b"), Ok(100));
        assert!(ram_in_bytes("abc").is_err());
        assert!(ram_in_bytes("10x").is_err());
        assert!(ram_in_bytes("").is_err());
        assert_eq!(ram_in_bytes("m"), Err("invalid size: 'm'".to_string()));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10m"), Some(600_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_go_duration("-2s"), Some(-2_000_000_000));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("2024-01-01"), None);
    }

    #[test]
    fn timestamps_for_the_api() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(api_timestamp("10m", now).unwrap(), "1699999400");
        assert_eq!(api_timestamp("1699990000", now).unwrap(), "1699990000");
        assert_eq!(api_timestamp("1699990000.5", now).unwrap(), "1699990000.5");
        assert_eq!(
            api_timestamp("2023-11-14T22:13:20Z", now).unwrap(),
            "1700000000.000000000"
        );
        assert_eq!(
            api_timestamp("2023-11-14T22:13:20.25+00:00", now).unwrap(),
            "1700000000.250000000"
        );
        assert!(api_timestamp("yesterday", now).is_err());
    }

    #[test]
    fn ago() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(time_ago(1_700_000_000 - 120, now), "2 minutes ago");
    }
}
