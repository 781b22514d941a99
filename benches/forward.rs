//! psyrun's backbone forward throughput, for `bench/run`: the same network and batch as
//! `bench/floor.py`, through psyrun's own backbone code (contiguous and channels-last).
//!
//! `cargo bench --bench forward -- [ARCH] [CUT] [BATCH] [SIZE] [RUNS] [DEVICE]`
//! (default resnet50 layer2 32 224 3 cpu; DEVICE `cpu` or `cuda:N`). Prints one JSON line.
// The interpreter's modules are compiled in whole (with their unit tests, as `cargo bench`
// sets cfg(test)); this program uses a few of them.
#![allow(dead_code, unused_imports)]
#![allow(clippy::result_large_err)]

use psyrun::cli;

#[path = "../src/torch/mod.rs"]
mod torch;

use psyrun::models::catalog::Arch;
use std::time::Instant;

fn main() {
    // As `psyrun run` does.
    torch::tune_allocator();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let arch_name = arg(0, "resnet50");
    let Some(arch) = Arch::from_name(&arch_name) else {
        eprintln!("unknown architecture {arch_name}");
        std::process::exit(2);
    };
    let cut = arg(1, "layer2");
    let parse = |s: String| -> i64 { s.parse().unwrap_or_else(|_| std::process::exit(2)) };
    let batch = parse(arg(2, "32"));
    let size = parse(arg(3, "224"));
    let runs = parse(arg(4, "3"));
    let device = match arg(5, "cpu").as_str() {
        "cpu" => tch::Device::Cpu,
        d => match d.strip_prefix("cuda").map(|n| n.trim_start_matches(':')) {
            Some("") => tch::Device::Cuda(0),
            Some(n) => tch::Device::Cuda(n.parse().unwrap_or_else(|_| std::process::exit(2))),
            None => std::process::exit(2),
        },
    };
    let sync = || {
        if let tch::Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    let mut backbone = match torch::backbone::Backbone::new(arch, &cut, tch::Device::Cpu) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    backbone.init_random(0);
    backbone.to_device(device);
    let x = tch::Tensor::randn([batch, 3, size, size], (tch::Kind::Float, device));
    let mut out = format!(
        "{{\"arch\": \"{arch_name}\", \"cut\": \"{cut}\", \"batch\": {batch}, \"size\": {size}, \"device\": \"{device:?}\", \"threads\": {}",
        tch::get_num_threads()
    );
    for (name, channels_last) in [("contiguous", false), ("channels_last", true)] {
        backbone.set_channels_last(channels_last);
        let _ = backbone.forward(&x); // warm-up
        sync();
        let t = Instant::now();
        for _ in 0..runs {
            let _ = backbone.forward(&x);
        }
        sync();
        let ips = (batch * runs) as f64 / t.elapsed().as_secs_f64();
        out.push_str(&format!(", \"{name}\": {ips:.3}"));
    }
    out.push('}');
    println!("{out}");
    let _ = cli::EXIT_OK;
}
