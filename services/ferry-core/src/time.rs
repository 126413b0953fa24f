//! Time as Ferry keeps it: unix seconds, shown as RFC 3339 in UTC.

/// Current time as unix seconds.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `unix_secs` as RFC 3339 in UTC, to the second: `2023-11-14T22:13:20Z`. Seconds beyond any calendar date chrono
/// can hold (some 262,000 years either way of 1970) are written as `unix time <secs>`, so that a bad timestamp
/// shows as what it is rather than as another date.
pub fn rfc3339(unix_secs: i64) -> String {
    match chrono::DateTime::from_timestamp(unix_secs, 0) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => format!("unix time {unix_secs}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_in_utc_to_the_second() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn a_timestamp_past_the_calendar_is_shown_as_itself_not_as_1970() {
        assert_eq!(rfc3339(i64::MAX), "unix time 9223372036854775807");
        assert_eq!(rfc3339(i64::MIN), "unix time -9223372036854775808");
    }

    #[test]
    fn now_is_after_this_code_was_written() {
        assert!(now() > 1_764_000_000, "{}", now());
    }
}
