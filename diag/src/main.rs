static EBPF_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/diag.bpf.o"));
fn main() {
    println!("{} bytes, missing: {:?}", EBPF_OBJECT.len(), env!("DIAG_EBPF_MISSING"));
}
