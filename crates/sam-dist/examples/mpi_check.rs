//! Exercises the MPI engine under `mpirun`: `mpi_check [ok|hang|die|bench] [TIMEOUT_SECS]
//! [ELEMENTS]`. `ok` prints each rank's reductions; `hang` makes rank 1 stall before the
//! reduction (the others' watchdogs must end the job); `die` makes rank 1 exit before it;
//! `bench` times the all-reduce of ELEMENTS f32 (default ViT-B's 93.7 M parameters) in the
//! trainer's 4 M-element buckets.

use std::time::Duration;

use sam_dist::{Engine, connect};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("ok", String::as_str).to_string();
    let timeout = args.get(1).and_then(|t| t.parse().ok()).unwrap_or(60);
    let mut comm = match connect(Engine::Mpi, Duration::from_secs(timeout)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let (rank, world) = (comm.rank(), comm.world_size());
    if rank == 1 && mode == "hang" {
        std::thread::sleep(Duration::from_secs(600));
    }
    if mode == "bench" {
        let n: usize = args
            .get(2)
            .and_then(|t| t.parse().ok())
            .unwrap_or(93_735_472);
        let mut grads = vec![1.0f32; n];
        let run = |comm: &mut Box<dyn sam_dist::Communicator>, grads: &mut [f32]| {
            let start = std::time::Instant::now();
            for bucket in grads.chunks_mut(4 << 20) {
                if let Err(e) = comm.all_reduce_f32(bucket) {
                    eprintln!("error: {e}");
                    comm.abort(1);
                }
            }
            start.elapsed().as_secs_f64()
        };
        run(&mut comm, &mut grads);
        let times: Vec<f64> = (0..3).map(|_| run(&mut comm, &mut grads)).collect();
        let best = times.iter().cloned().fold(f64::INFINITY, f64::min);
        if rank == 0 {
            println!(
                "all_reduce of {n} f32 over {world} ranks: best {:.3} s of 3 ({:.2} GB/s of \
                 gradient), runs {times:?}",
                best,
                n as f64 * 4.0 / best / 1e9
            );
        }
        return;
    }
    if rank == 1 && mode == "die" {
        eprintln!("rank 1 exits on purpose");
        std::process::exit(3);
    }
    let mut v: Vec<f32> = (0..5).map(|i| (rank * 10 + i) as f32).collect();
    let mut w = vec![rank as f64 + 0.5];
    let mut bytes = if rank == 0 {
        b"from rank 0".to_vec()
    } else {
        Vec::new()
    };
    let result = comm
        .all_reduce_f32(&mut v)
        .and_then(|_| comm.all_reduce_f64(&mut w))
        .and_then(|_| comm.broadcast_bytes(0, &mut bytes))
        .and_then(|_| comm.check_same("constant", b"same"))
        .and_then(|_| comm.barrier());
    if let Err(e) = result {
        eprintln!("error: {e}");
        comm.abort(1);
    }
    let differs = comm.check_same("rank", &rank.to_le_bytes());
    println!(
        "rank {rank}/{world} local {} f32 {v:?} f64 {w:?} bytes {:?} check {}",
        comm.local_rank(),
        String::from_utf8_lossy(&bytes),
        match differs {
            Ok(()) => "same".to_string(),
            Err(e) => e.to_string(),
        }
    );
}
