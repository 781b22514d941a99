//! psyrun's backbone forward throughput, for `bench/run`: the same network and batch as
//! `bench/floor.py`, through psyrun's own backbone code (contiguous and channels-last).
//!
//! `cargo bench --bench forward -- [ARCH] [CUT] [BATCH] [SIZE] [RUNS] [DEVICE]`
//! (default resnet50 layer2 32 224 3 cpu; DEVICE `cpu` or `cuda:N`). Prints one JSON line.
use psyrun_torch as torch;

use psyrun::models::catalog::Arch;
use psyrun::plan::Pooling;
use std::time::Instant;

fn main() {
    // As `psyrun run` does.
    torch::tune_allocator();
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
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
    // The mean time of `runs` calls after one warm-up, in milliseconds.
    let time_ms = |f: &dyn Fn() -> tch::Tensor| {
        let _ = f();
        sync();
        let t = Instant::now();
        for _ in 0..runs {
            let _ = f();
        }
        sync();
        t.elapsed().as_secs_f64() * 1e3 / runs as f64
    };
    // What the interpreter does for every batch: the forward pass to the cut, its output
    // flattened for the probe (a view in the backbone's feature order).
    let probe_features = |b: &torch::backbone::Backbone| {
        torch::backbone::flatten_features(&b.forward_raw(&x), Pooling::Off, b.feature_order())
    };
    for (name, channels_last) in [("contiguous", false), ("channels_last", true)] {
        backbone.set_channels_last(channels_last);
        let ms = time_ms(&|| probe_features(&backbone));
        let ips = batch as f64 * 1e3 / ms;
        out.push_str(&format!(", \"{name}\": {ips:.3}"));
    }
    // Channels-last, in milliseconds per batch: the whole forward pass as above, the part
    // of it that copies the input into NHWC, and what copying the output back into
    // torchvision's order would add (`psyrun features` does; runs flatten without it).
    let y = backbone.forward_raw(&x);
    let input_ms = time_ms(&|| torch::backbone::to_channels_last(&x));
    let output_ms = time_ms(&|| y.contiguous());
    let forward_ms = time_ms(&|| probe_features(&backbone));
    out.push_str(&format!(
        ", \"channels_last_ms\": {{\"forward\": {forward_ms:.2}, \"input_copy\": {input_ms:.2}, \"output_copy\": {output_ms:.2}}}"
    ));
    out.push('}');
    println!("{out}");
}
