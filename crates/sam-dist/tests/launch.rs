//! Launcher variables and the TCP rendezvous.

use std::collections::HashMap;
use std::time::Duration;

use sam_dist::{
    Communicator, DistError, Engine, LaunchEnv, LaunchSource, SingleProcess, bootstrap,
};

fn env(pairs: &[(&str, &str)]) -> Result<LaunchEnv, DistError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    LaunchEnv::from_vars(|k| map.get(k).cloned())
}

#[test]
fn torchrun_variables() {
    let e = env(&[
        ("RANK", "5"),
        ("WORLD_SIZE", "16"),
        ("LOCAL_RANK", "1"),
        ("LOCAL_WORLD_SIZE", "8"),
        ("MASTER_ADDR", "node01"),
        ("MASTER_PORT", "29500"),
    ])
    .unwrap();
    assert_eq!(e.source, LaunchSource::Torchrun);
    assert_eq!(
        (e.rank, e.world_size, e.local_rank, e.local_world_size),
        (5, 16, 1, 8)
    );
    assert_eq!(e.master, Some(("node01".to_string(), 29500)));
    assert!(!e.is_main());
}

#[test]
fn slurm_variables() {
    let e = env(&[
        ("SLURM_PROCID", "9"),
        ("SLURM_NTASKS", "32"),
        ("SLURM_LOCALID", "1"),
        ("SLURM_NTASKS_PER_NODE", "8(x4)"),
        ("SLURM_LAUNCH_NODE_IPADDR", "10.0.0.7"),
        ("MASTER_PORT", "29400"),
    ])
    .unwrap();
    assert_eq!(e.source, LaunchSource::Slurm);
    assert_eq!(
        (e.rank, e.world_size, e.local_rank, e.local_world_size),
        (9, 32, 1, 8)
    );
    assert_eq!(e.master, Some(("10.0.0.7".to_string(), 29400)));
    // The step's first node is rank 0's, where the launch node may be a login node.
    let e = env(&[
        ("SLURM_PROCID", "9"),
        ("SLURM_NTASKS", "32"),
        ("SLURM_LAUNCH_NODE_IPADDR", "10.0.0.7"),
        ("SLURM_JOB_NODELIST", "gpu[07-10,20]"),
        ("MASTER_PORT", "29400"),
    ])
    .unwrap();
    assert_eq!(e.master, Some(("gpu07".to_string(), 29400)));
    for (list, first) in [
        ("node1", "node1"),
        ("node1,node2", "node1"),
        ("a[001-004]", "a001"),
        ("n[3,5-6]-ib,m1", "n3-ib"),
    ] {
        let e = env(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_STEP_NODELIST", list),
            ("MASTER_PORT", "1"),
        ])
        .unwrap();
        assert_eq!(e.master.unwrap().0, first, "{list}");
    }
}

#[test]
fn open_mpi_and_pmi_variables() {
    let e = env(&[
        ("OMPI_COMM_WORLD_RANK", "3"),
        ("OMPI_COMM_WORLD_SIZE", "4"),
        ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
        ("OMPI_COMM_WORLD_LOCAL_SIZE", "2"),
    ])
    .unwrap();
    assert_eq!(e.source, LaunchSource::OpenMpi);
    assert_eq!(
        (e.rank, e.world_size, e.local_rank, e.local_world_size),
        (3, 4, 1, 2)
    );
    assert_eq!(e.master, None);
    let e = env(&[("PMI_RANK", "0"), ("PMI_SIZE", "2")]).unwrap();
    assert_eq!((e.source, e.rank, e.world_size), (LaunchSource::Pmi, 0, 2));
}

#[test]
fn no_launcher_is_one_process() {
    let e = env(&[]).unwrap();
    assert_eq!(e, LaunchEnv::single());
    assert!(e.is_main());
}

#[test]
fn bad_variables_are_named() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("RANK", "x"), ("WORLD_SIZE", "2")], "RANK"),
        (&[("RANK", "1")], "WORLD_SIZE"),
        (&[("RANK", "2"), ("WORLD_SIZE", "2")], "RANK"),
        (&[("RANK", "0"), ("WORLD_SIZE", "0")], "RANK"),
        (&[("MASTER_ADDR", "h")], "MASTER_PORT"),
        (
            &[("MASTER_ADDR", "h"), ("MASTER_PORT", "70000")],
            "MASTER_PORT",
        ),
        (
            &[("SLURM_PROCID", "1"), ("SLURM_NTASKS", "two")],
            "SLURM_NTASKS",
        ),
    ];
    for (vars, named) in cases {
        match env(vars) {
            Err(DistError::Launch { var, .. }) => assert_eq!(&var, named, "{vars:?}"),
            other => panic!("{vars:?}: expected an error naming {named}, got {other:?}"),
        }
    }
}

#[test]
fn engines_parse_and_uncompiled_ones_are_named() {
    assert_eq!("mpi".parse::<Engine>().unwrap(), Engine::Mpi);
    assert_eq!("nccl".parse::<Engine>().unwrap(), Engine::Nccl);
    assert_eq!("single".parse::<Engine>().unwrap(), Engine::Single);
    let e = "gloo".parse::<Engine>().unwrap_err().to_string();
    assert!(e.contains("gloo"), "{e}");
    #[cfg(not(feature = "nccl"))]
    {
        let e = sam_dist::connect(Engine::Nccl, Duration::from_secs(1))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`nccl` feature"), "{e}");
    }
}

#[test]
fn single_process_collectives_are_identities() {
    let mut c = SingleProcess;
    let mut v = vec![1.5f32, -2.0];
    c.all_reduce_f32(&mut v).unwrap();
    assert_eq!(v, [1.5, -2.0]);
    let mut b = b"abc".to_vec();
    c.broadcast_bytes(0, &mut b).unwrap();
    assert_eq!(b, b"abc");
    c.check_same("config", b"x").unwrap();
    c.barrier().unwrap();
    assert_eq!((c.rank(), c.world_size(), c.is_main()), (0, 1, true));
}

#[test]
fn rendezvous_hands_the_payload_to_every_rank() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let payload: Vec<u8> = (0..128).map(|i| (i * 7) as u8).collect();
    let expected = payload.clone();
    let server = std::thread::spawn(move || {
        bootstrap::serve_on(listener, 4, &payload, Duration::from_secs(20))
    });
    let clients: Vec<_> = (1..4)
        .map(|rank| {
            std::thread::spawn(move || {
                bootstrap::join("127.0.0.1", port, rank, 4, Duration::from_secs(20))
            })
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap().unwrap(), expected);
    }
    server.join().unwrap().unwrap();
}

#[test]
fn rendezvous_names_missing_ranks_and_disagreements() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let e = bootstrap::serve_on(listener, 3, b"id", Duration::from_millis(300))
        .unwrap_err()
        .to_string();
    assert!(e.contains("ranks 1, 2 did not connect"), "{e}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        bootstrap::serve_on(listener, 2, b"id", Duration::from_secs(20))
    });
    // The client is told nothing (the server hangs up), so it fails too.
    let e = bootstrap::join("127.0.0.1", port, 1, 3, Duration::from_secs(5))
        .expect_err("an error")
        .to_string();
    assert!(e.contains("no answer from rank 0"), "{e}");
    let e = server.join().unwrap().unwrap_err().to_string();
    assert!(e.contains("3 ranks, rank 0 says 2"), "{e}");

    // Nobody listening: the joining rank gives up after its timeout, naming the address. Port
    // 1 (tcpmux) is not served here; a port freed by this test could be handed to a parallel one.
    let port = 1;
    let e = bootstrap::join("127.0.0.1", port, 1, 2, Duration::from_millis(500))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("127.0.0.1:{port}")) && e.contains("not reachable"),
        "{e}"
    );
}

/// The innermost launcher wins: an `mpirun` inside a Slurm batch step passes the step's
/// `SLURM_*` values (rank 0 of 1) to every process; `srun`'s own PMI variables agree with
/// Slurm's and leave the node-local rank to them.
#[test]
fn an_mpi_launcher_inside_slurm_is_read_first() {
    let e = env(&[
        ("SLURM_PROCID", "0"),
        ("SLURM_NTASKS", "1"),
        ("SLURM_LOCALID", "0"),
        ("OMPI_COMM_WORLD_RANK", "3"),
        ("OMPI_COMM_WORLD_SIZE", "4"),
    ])
    .unwrap();
    assert_eq!(
        (e.source, e.rank, e.world_size),
        (LaunchSource::OpenMpi, 3, 4)
    );
    let e = env(&[
        ("SLURM_PROCID", "0"),
        ("SLURM_NTASKS", "1"),
        ("PMI_RANK", "2"),
        ("PMI_SIZE", "4"),
    ])
    .unwrap();
    assert_eq!((e.source, e.rank), (LaunchSource::Pmi, 2));
    let e = env(&[
        ("SLURM_PROCID", "5"),
        ("SLURM_NTASKS", "8"),
        ("SLURM_LOCALID", "1"),
        ("PMI_RANK", "5"),
        ("PMI_SIZE", "8"),
    ])
    .unwrap();
    assert_eq!(
        (e.source, e.rank, e.local_rank),
        (LaunchSource::Slurm, 5, 1)
    );
}

/// torchrun's agent keeps its own store on `MASTER_PORT`: the rendezvous takes the next port,
/// or `SAM_DIST_PORT` when given.
#[test]
fn the_rendezvous_port_avoids_torchrun_s_store() {
    let torchrun = [
        ("RANK", "0"),
        ("WORLD_SIZE", "2"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", "29500"),
    ];
    assert_eq!(env(&torchrun).unwrap().master.unwrap().1, 29500);
    let mut agent = torchrun.to_vec();
    agent.push(("TORCHELASTIC_USE_AGENT_STORE", "True"));
    assert_eq!(env(&agent).unwrap().master.unwrap().1, 29501);
    agent.push(("SAM_DIST_PORT", "31000"));
    assert_eq!(env(&agent).unwrap().master.unwrap().1, 31000);
    agent.pop();
    agent.push(("SAM_DIST_PORT", "port"));
    match env(&agent) {
        Err(DistError::Launch { var, .. }) => assert_eq!(var, "SAM_DIST_PORT"),
        other => panic!("{other:?}"),
    }
}
