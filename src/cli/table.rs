//! kubectl-style tables: upper-case headers, columns padded with three
//! spaces, nothing else.

use std::time::{Duration, SystemTime};

pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let n = cells.len();
        for (i, (cell, w)) in cells.into_iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i + 1 < n {
                out.push_str(&" ".repeat(w - cell.chars().count() + 3));
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// kubectl's AGE: `45s`, `12m`, `3h`, `2d`.
pub fn age(since: Option<SystemTime>) -> String {
    let Some(since) = since else {
        return "<unknown>".into();
    };
    let secs = SystemTime::now()
        .duration_since(since)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_like_kubectl() {
        let t = render(
            &["NAME", "READY"],
            &[
                vec!["pod-1".into(), "1/1".into()],
                vec!["a".into(), "0/1".into()],
            ],
        );
        assert_eq!(t, "NAME    READY\npod-1   1/1\na       0/1\n");
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now = SystemTime::now();
        assert_eq!(age(Some(now - Duration::from_secs(5))), "5s");
        assert_eq!(age(Some(now - Duration::from_secs(600))), "10m");
        assert_eq!(age(Some(now - Duration::from_secs(3 * 3600))), "3h");
        assert_eq!(age(None), "<unknown>");
    }
}

/// RFC 3339 in UTC (`2026-11-26T01:02:03Z`), as Kubernetes writes
/// timestamps; the civil-from-days algorithm (H. Hinnant) avoids a date crate
/// for one format.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_654_923);
        assert_eq!(rfc3339(t), "2026-11-26T01:02:03Z");
    }
}
