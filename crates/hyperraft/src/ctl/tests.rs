use super::{range_end, table};

#[test]
fn tables_align_columns_to_the_widest_cell() {
    // Proves the human output lines up: every column is as wide as its widest cell, two spaces apart.
    let rows = vec![vec!["a".to_string(), "1".to_string()], vec!["longer".to_string(), "22".to_string()]];
    assert_eq!(table(&["KEY", "V"], &rows), "KEY     V\na       1\nlonger  22\n");
}

#[test]
fn a_range_without_an_end_is_the_prefix() {
    // Proves `range KEY` covers the keys starting with KEY, and --end overrides it.
    assert_eq!(&range_end("app/", None)[..], b"app0");
    assert_eq!(&range_end("a", Some("c"))[..], b"c");
}
