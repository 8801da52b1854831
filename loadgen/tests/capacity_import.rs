//! `trace import`: CSV and JSON Lines into a trace; bad rows are reported by line number and
//! refuse the import unless `skip_bad`, in which case the rest is imported.

use flashsale_engine::Command;
use flashsale_loadgen::import::{self, Format, ImportError};
use flashsale_loadgen::trace;
use std::path::Path;

fn records(path: &Path) -> Vec<(u64, Command)> {
    let mut reader = trace::open(path).unwrap();
    let mut out = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        out.push((r.at_ns, r.command));
    }
    out
}

const GOOD: &str = "timestamp_ms,op,order_id,user_id,sku_id,qty
1700000000000,reserve,10,1,5,1
1700000000000.5,reserve,11,2,5,2
1700000000250,pay,10,1,,
1700000000100,cancel,11,2,5,2
";

#[test]
fn csv_imports_sorted_relative_and_exact() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, GOOD).unwrap();
    let out = dir.path().join("t.fst");
    let report = import::import(&input, Format::Csv, &out, &[], false).unwrap();
    assert_eq!((report.rows, report.written), (4, 4));
    assert_eq!(
        records(&out),
        vec![
            (
                0,
                Command::Reserve {
                    order_id: 10,
                    user_id: 1,
                    sku_id: 5,
                    qty: 1
                }
            ),
            (
                500_000,
                Command::Reserve {
                    order_id: 11,
                    user_id: 2,
                    sku_id: 5,
                    qty: 2
                }
            ),
            (
                100_000_000,
                Command::Cancel {
                    order_id: 11,
                    user_id: 2
                }
            ),
            (
                250_000_000,
                Command::Pay {
                    order_id: 10,
                    user_id: 1
                }
            ),
        ]
    );
    let info = trace::info(&out).unwrap();
    assert_eq!(info.counts["reserve"], 2);
    assert!((info.duration_s - 0.25).abs() < 1e-9);
}

#[test]
fn a_reordered_header_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        "op,qty,sku_id,user_id,order_id,timestamp_ms\nreserve,3,9,8,7,5\n",
    )
    .unwrap();
    let out = dir.path().join("t.fst");
    import::import(&input, Format::Csv, &out, &[], false).unwrap();
    assert_eq!(
        records(&out),
        vec![(
            0,
            Command::Reserve {
                order_id: 7,
                user_id: 8,
                sku_id: 9,
                qty: 3
            }
        )]
    );
}

const BAD: &str = "timestamp_ms,op,order_id,user_id,sku_id,qty
1000,reserve,10,1,5,1
1001,refund,11,2,5,1

1002,reserve,12,x,5,1
1003,reserve,13,3,5,0
soon,pay,10,1,,
1004,pay,10,1,,
1005,reserve,14,4,5
";

#[test]
fn bad_rows_are_named_by_line_and_refuse_the_import() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.csv");
    std::fs::write(&input, BAD).unwrap();
    let out = dir.path().join("t.fst");
    let err = import::import(&input, Format::Csv, &out, &[], false).unwrap_err();
    let text = err.to_string();
    let ImportError::BadRows { count, bad, .. } = &err else {
        panic!("{text}");
    };
    assert_eq!(*count, 5);
    let lines: Vec<usize> = bad.iter().map(|b| b.line).collect();
    assert_eq!(lines, [3, 5, 6, 7, 9]);
    for needle in [
        "line 3: op `refund` is not reserve, pay or cancel",
        "line 5: user_id `x` is not a valid non-negative integer",
        "line 6: qty must be at least 1",
        "line 7: timestamp_ms `soon` is not a number",
        "line 9: qty is missing",
        "import refused",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    assert!(!out.exists(), "a refused import writes nothing");

    let report = import::import(&input, Format::Csv, &out, &[], true).unwrap();
    assert_eq!((report.rows, report.written, report.bad.len()), (7, 2, 5));
    let info = trace::info(&out).unwrap();
    assert_eq!(info.order_requests, 2);
}

#[test]
fn jsonl_imports_and_reports_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        r#"{"timestamp_ms": 5, "op": "reserve", "order_id": 1, "user_id": 2, "sku_id": 3, "qty": 1}
{"timestamp_ms": 6, "op": "pay", "order_id": 1, "user_id": 2, "extra": true}
{"timestamp_ms": 7, "op": "pay"
{"timestamp_ms": -1, "op": "pay", "order_id": 1, "user_id": 2}
"#,
    )
    .unwrap();
    let out = dir.path().join("t.fst");
    let err = import::import(&input, Format::Jsonl, &out, &[], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 3: not a JSON object"), "{err}");
    assert!(
        err.contains("line 4: timestamp_ms `-1` must be ≥ 0"),
        "{err}"
    );
    let report = import::import(&input, Format::Jsonl, &out, &[], true).unwrap();
    assert_eq!(report.written, 2);
    assert_eq!(
        records(&out)[1],
        (
            1_000_000,
            Command::Pay {
                order_id: 1,
                user_id: 2
            }
        )
    );
}

#[test]
fn missing_file_and_empty_input_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.fst");
    let err = import::import(&dir.path().join("nope.csv"), Format::Csv, &out, &[], false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot read") && err.contains("nope.csv"),
        "{err}"
    );
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "timestamp_ms,op,order_id,user_id,sku_id,qty\n").unwrap();
    let err = import::import(&empty, Format::Csv, &out, &[], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no rows"), "{err}");
}
