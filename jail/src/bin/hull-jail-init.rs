//! The jail's child mode as a binary of its own, for tests and tools that are not
//! the agent (the agent re-executes itself with `jail-init` instead).
fn main() {
    hull_jail::child::main()
}
