//! Misuse of `#[aioloop::main]` / `#[aioloop::test]` is a compile error with a message that
//! says what to change (the expected messages are the `.stderr` files beside the cases).
//! The cases name the macros crate as `aioloop`, so only this small crate is built.

#[test]
fn misuse_is_a_clear_compile_error() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
