use super::*;

#[test]
fn placeholder() {
    let t = Tracker::new(ParseOptions::default());
    assert_eq!(t.connections(), 0);
}
