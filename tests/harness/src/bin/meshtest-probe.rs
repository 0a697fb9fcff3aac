//! Starts a control plane, prints its directory and process ids, then panics without dropping
//! it: the harness test checks that the watchdog cleans up after a crashed test process.

fn main() {
    let plane = meshtest::ControlPlane::start(&meshtest::Options::default()).expect("control plane");
    let pids = std::fs::read_to_string(plane.dir.join("pids")).expect("pids");
    println!("{}", plane.dir.display());
    println!("{}", pids.split_whitespace().collect::<Vec<_>>().join(" "));
    std::mem::forget(plane);
    panic!("probe: simulated test failure");
}
