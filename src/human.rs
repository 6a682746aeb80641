//! Numbers and durations as people read them.

/// `46764746` as `46,764,746`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A remaining time: `40 s`, `22 min`, `1 h 05 min`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", (s + 30) / 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(46764746), "46,764,746");
    }

    #[test]
    fn durations_round_to_their_unit() {
        assert_eq!(duration(40.2), "40 s");
        assert_eq!(duration(22.0 * 60.0), "22 min");
        assert_eq!(duration(3900.0), "1 h 05 min");
    }
}
