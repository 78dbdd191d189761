include!("../contract-wit.rs");

fn main() {
    write_contract("9.0.0");
}
