fn main() {
    match hull_runtime::kvm::probe() {
        Ok(()) => println!("kvm ok"),
        Err(e) => println!("kvm: {e}"),
    }
}
