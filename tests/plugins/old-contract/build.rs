include!("../contract-wit.rs");

fn main() {
    write_contract("0.1.0");
}
