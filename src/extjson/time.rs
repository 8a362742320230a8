//! Calendar arithmetic for dates written from milliseconds since the
//! epoch, without going through chrono or time: proleptic Gregorian days,
//! and the digits of `YYYY-MM-DDTHH:MM:SS`.

/// (year, month, day) of a day number counted from 1970-01-01, proleptic
/// Gregorian (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DDTHH:MM:SS` of `ms` since the epoch; the caller checks that
/// the year has four digits. Returns the milliseconds within the second.
pub(crate) fn write_datetime_seconds(ms: i64, out: &mut Vec<u8>) -> u32 {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000) as u32;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u32;
    write_date_parts(y, m, d, out);
    out.push(b'T');
    push2(sod / 3600, out);
    out.push(b':');
    push2(sod / 60 % 60, out);
    out.push(b':');
    push2(sod % 60, out);
    millis
}

/// `YYYY-MM-DD`; the caller checks that the year has four digits.
pub(crate) fn write_date_parts(y: i64, m: u32, d: u32, out: &mut Vec<u8>) {
    let y = y as u32;
    push2(y / 100, out);
    push2(y % 100, out);
    out.push(b'-');
    push2(m, out);
    out.push(b'-');
    push2(d, out);
}

#[inline]
fn push2(v: u32, out: &mut Vec<u8>) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// RFC 3339 in UTC as the `time` crate writes it for bson: fractional
/// seconds only when non-zero, with trailing zeros trimmed.
pub(super) fn write_rfc3339_trimmed(ms: i64, out: &mut Vec<u8>) {
    let millis = write_datetime_seconds(ms, out);
    if millis != 0 {
        out.push(b'.');
        let digits = [
            b'0' + (millis / 100) as u8,
            b'0' + (millis / 10 % 10) as u8,
            b'0' + (millis % 10) as u8,
        ];
        let len = if millis % 100 == 0 {
            1
        } else if millis % 10 == 0 {
            2
        } else {
            3
        };
        out.extend_from_slice(&digits[..len]);
    }
    out.push(b'Z');
}
