use crate::exit;

pub fn run() -> u8 {
    crate::render::print_json(hacluster::config::schema());
    exit::OK
}
