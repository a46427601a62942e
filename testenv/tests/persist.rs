//! The write-ahead log and snapshots: what was acknowledged survives a restart, a torn tail is
//! cut off at the last good record, and compaction loses nothing.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use testenv::persist::{self, PersistError, PersistOptions};
use testenv::store::{CollectionKey, Store, WatchCacheSizing};
use testenv::{TestEnv, TestEnvError, TestEnvOptions};

fn configmaps() -> CollectionKey {
    CollectionKey::new("", "configmaps")
}

fn open(dir: &Path) -> (Store, persist::Persistence, persist::OpenReport) {
    persist::open(dir, WatchCacheSizing::default(), PersistOptions::default()).unwrap()
}

/// Commits a ConfigMap through the store (and so through the log).
fn put(store: &Store, name: &str, data: &str) -> u64 {
    let mut s = store.write();
    let rv = s.next_resource_version();
    let expected = s
        .get(&configmaps(), "default", name)
        .map(|o| o.resource_version);
    let v = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
            "resourceVersion": rv.to_string()},
        "data": {"k": data}});
    s.put(&configmaps(), &v, expected).unwrap();
    rv
}

fn remove(store: &Store, name: &str) {
    let mut s = store.write();
    let rv = s.next_resource_version();
    let final_state = json!({"metadata": {"name": name, "namespace": "default", "resourceVersion": rv.to_string()}});
    s.remove(&configmaps(), "default", name, &final_state, 0)
        .unwrap();
}

/// name → (resourceVersion, data.k) of every ConfigMap.
fn contents(store: &Store) -> Vec<(String, u64, String)> {
    let s = store.read();
    s.list(&configmaps(), None, None)
        .map(|o| {
            let v = o.value();
            (
                o.name.clone(),
                o.resource_version,
                v["data"]["k"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn reopening_restores_objects_and_resource_version() {
    let dir = tempfile::tempdir().unwrap();
    let (store, p, report) = open(dir.path());
    assert_eq!(report.log_records, 0);
    put(&store, "a", "1");
    put(&store, "b", "1");
    put(&store, "a", "2");
    remove(&store, "b");
    let rv = store.read().resource_version();
    let before = contents(&store);
    drop((store, p));

    let (store, _p, report) = open(dir.path());
    assert_eq!(report.log_records, 4);
    assert_eq!(report.dropped_tail, None);
    assert_eq!(contents(&store), before);
    assert_eq!(before, [("a".to_string(), rv - 1, "2".to_string())]);
    // The newest change was a deletion: the counter must not go back to the newest object's.
    assert_eq!(store.read().resource_version(), rv);
    assert_eq!(report.resource_version, rv);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, _p, _) = open(dir.path());
    let err = persist::open(
        dir.path(),
        WatchCacheSizing::default(),
        PersistOptions::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, PersistError::Locked(_)), "{err}");
    assert!(
        err.to_string()
            .ends_with("the data directory is in use by another process")
    );
}

/// Writes five objects and returns the segment and its length after each write.
fn five_records(dir: &Path) -> (std::path::PathBuf, Vec<u64>) {
    let (store, p, _) = open(dir);
    let mut sizes = vec![p.segment_bytes()];
    for i in 0..5 {
        put(&store, &format!("o{i}"), &"x".repeat(100));
        sizes.push(p.segment_bytes());
    }
    let path = p.current_segment();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), sizes[5]);
    (path, sizes)
}

fn names(store: &Store) -> Vec<String> {
    contents(store).into_iter().map(|(n, _, _)| n).collect()
}

#[test]
fn a_record_cut_in_the_middle_is_dropped_and_appends_continue_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, sizes) = five_records(dir.path());
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(sizes[4] + 20).unwrap();
    drop(f);

    let (store, p, report) = open(dir.path());
    let tail = report.dropped_tail.expect("the torn tail is reported");
    assert_eq!(tail.offset, sizes[4]);
    assert_eq!(tail.dropped_bytes, 20);
    assert_eq!(tail.reason, "the file ends inside a record");
    assert_eq!(names(&store), ["o0", "o1", "o2", "o3"]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), sizes[4]);

    put(&store, "after", "y");
    drop((store, p));
    let (store, _p, report) = open(dir.path());
    assert_eq!(report.dropped_tail, None);
    assert_eq!(names(&store), ["after", "o0", "o1", "o2", "o3"]);
}

#[test]
fn garbage_after_the_last_record_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (path, sizes) = five_records(dir.path());
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"\x03\x00\x00\x00garbage!!!").unwrap();
    drop(f);

    let (store, _p, report) = open(dir.path());
    let tail = report.dropped_tail.unwrap();
    assert_eq!((tail.offset, tail.dropped_bytes), (sizes[5], 14));
    assert_eq!(tail.reason, "checksum mismatch");
    assert_eq!(names(&store), ["o0", "o1", "o2", "o3", "o4"]);
}

#[test]
fn a_flipped_byte_drops_its_record_and_everything_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, sizes) = five_records(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let inside_third = (sizes[2] + 40) as usize;
    bytes[inside_third] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();

    let (store, _p, report) = open(dir.path());
    let tail = report.dropped_tail.unwrap();
    assert_eq!(tail.offset, sizes[2]);
    assert_eq!(tail.dropped_bytes, sizes[5] - sizes[2]);
    assert_eq!(names(&store), ["o0", "o1"]);
    assert_eq!(store.read().resource_version(), contents(&store)[1].1);
}

#[test]
fn a_length_field_beyond_the_file_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (path, sizes) = five_records(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let len_field = sizes[4] as usize;
    bytes[len_field..len_field + 4].copy_from_slice(&1_000_000u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let (store, _p, report) = open(dir.path());
    assert_eq!(report.dropped_tail.unwrap().offset, sizes[4]);
    assert_eq!(names(&store).len(), 4);
}

#[test]
fn compaction_keeps_everything_and_removes_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (store, p, _) = open(dir.path());
    for i in 0..100 {
        put(&store, &format!("cm-{i:03}"), &format!("v{i}"));
    }
    for i in 0..10 {
        remove(&store, &format!("cm-{i:03}"));
    }
    let old_segment = p.current_segment();
    let report = p.compact(&store).unwrap();
    assert_eq!(report.objects, 90);
    assert_eq!(report.removed_segments, 1);
    assert!(!old_segment.exists());
    assert!(report.snapshot.exists());
    assert_ne!(p.current_segment(), old_segment);
    let rv_at_snapshot = store.read().resource_version();

    put(&store, "cm-100", "after");
    remove(&store, "cm-050");
    let rv = store.read().resource_version();
    let before = contents(&store);
    drop((store, p));

    let (store, p, report) = open(dir.path());
    assert_eq!(report.snapshot_objects, 90);
    assert_eq!(report.log_records, 2);
    assert_eq!(contents(&store), before);
    assert_eq!(store.read().resource_version(), rv);

    // A second compaction right after the last change (a deletion) keeps the counter.
    let report = p.compact(&store).unwrap();
    assert_eq!(report.objects, 90);
    drop((store, p));
    let (store, _p, report) = open(dir.path());
    assert_eq!(report.log_records, 0);
    assert_eq!(contents(&store), before);
    assert_eq!(store.read().resource_version(), rv);
    assert!(rv > rv_at_snapshot);
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "LOCK")
        .collect();
    assert_eq!(files.len(), 2, "one snapshot and one segment: {files:?}");
}

#[test]
fn damage_outside_the_newest_segment_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store, p, _) = open(dir.path());
    put(&store, "a", "1");
    let report = p.compact(&store).unwrap();
    drop((store, p));
    let mut bytes = std::fs::read(&report.snapshot).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0xff;
    std::fs::write(&report.snapshot, &bytes).unwrap();
    let err = persist::open(
        dir.path(),
        WatchCacheSizing::default(),
        PersistOptions::default(),
    )
    .err()
    .unwrap();
    match err {
        PersistError::Corrupt { path, reason, .. } => {
            assert_eq!(path, report.snapshot);
            assert_eq!(reason.to_string(), "checksum mismatch");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
}

#[test]
fn a_foreign_file_is_not_read_as_a_log() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wal-00000000000000000001.log"),
        b"hello world, not a log",
    )
    .unwrap();
    let err = persist::open(
        dir.path(),
        WatchCacheSizing::default(),
        PersistOptions::default(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, PersistError::BadHeader { what: "log", .. }),
        "{err}"
    );
}

async fn start_on(dir: &Path) -> TestEnv {
    let options = TestEnvOptions {
        data_dir: Some(dir.to_path_buf()),
        ..TestEnvOptions::default()
    };
    // The previous server's tasks release the directory when the runtime drops them.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TestEnv::start_with(options.clone()).await {
            Err(TestEnvError::Persist(PersistError::Locked(_))) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other.unwrap(),
        }
    }
}

#[tokio::test]
async fn a_restarted_server_with_a_data_dir_serves_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let env = start_on(dir.path()).await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    for name in ["one", "two", "three"] {
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"app": "persist"}}, "data": {"k": name}}),
        )
        .unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    api.delete("two", &DeleteParams::default()).await.unwrap();
    let before = api.list(&ListParams::default()).await.unwrap();
    env.stop().await;
    drop(env);

    let env = start_on(dir.path()).await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    let after = api.list(&ListParams::default()).await.unwrap();
    let summary = |l: &kube::core::ObjectList<ConfigMap>| -> Vec<Value> {
        l.items
            .iter()
            .map(|c| {
                json!([
                    c.metadata.name,
                    c.metadata.uid,
                    c.metadata.resource_version,
                    c.data
                ])
            })
            .collect()
    };
    assert_eq!(summary(&after), summary(&before));
    assert_eq!(summary(&after).len(), 2);
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    // New writes continue above the restored resourceVersion.
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "four"}})).unwrap();
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    let rv: u64 = created.metadata.resource_version.unwrap().parse().unwrap();
    let old: u64 = before.metadata.resource_version.unwrap().parse().unwrap();
    assert!(rv > old);
}

/// Measures the latency of a synced append from one writer; run with `--ignored --nocapture`.
#[tokio::test]
#[ignore = "measurement"]
async fn measure_append_latency() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _p, _) = open(dir.path());
    let data = "x".repeat(1000);
    let mut samples = Vec::new();
    for i in 0..2000 {
        let start = Instant::now();
        put(&store, &format!("cm-{i}"), &data);
        store.wait_durable().await.unwrap();
        samples.push(start.elapsed());
    }
    samples.sort();
    let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "put through the WAL (1 KiB objects, fdatasync each): p50 {:?} p99 {:?} max {:?}",
        p(0.5),
        p(0.99),
        samples[samples.len() - 1]
    );
}

#[tokio::test]
async fn the_background_task_compacts_once_the_log_outgrows_its_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let options = PersistOptions {
        compact_after_bytes: 4096,
        check_interval: Duration::from_millis(10),
    };
    let (store, p, _) = persist::open(dir.path(), WatchCacheSizing::default(), options).unwrap();
    let p = std::sync::Arc::new(p);
    let first_segment = p.current_segment();
    put(&store, "small", "x");
    assert!(!p.wants_compaction());
    let task = tokio::spawn(p.clone().run_compaction(store.clone()));
    for i in 0..40 {
        put(&store, &format!("cm-{i}"), &"y".repeat(200));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while first_segment.exists() {
        assert!(Instant::now() < deadline, "no compaction happened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    let _ = task.await;
    let before = contents(&store);
    drop((store, p));
    // A compaction already running on the blocking pool finishes and then lets go of the directory.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (store, _p, report) = loop {
        match persist::open(
            dir.path(),
            WatchCacheSizing::default(),
            PersistOptions::default(),
        ) {
            Err(PersistError::Locked(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => break other.unwrap(),
        }
    };
    assert!(report.snapshot.is_some());
    assert_eq!(report.snapshot_objects + report.log_records, 41);
    assert_eq!(contents(&store), before);
}

/// Waits until the change at `rv` is durable: the point where a server acknowledges it.
async fn acknowledge(store: &Store, rv: u64) {
    let durability = store.read().durability();
    durability.wait(rv).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_over_http_are_all_acknowledged_and_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let env = start_on(dir.path()).await;
    let mut writers = Vec::new();
    for w in 0..8 {
        let api: Api<ConfigMap> = Api::default_namespaced(env.client());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..25 {
                let name = format!("w{w}-{i:02}");
                let cm: ConfigMap = serde_json::from_value(
                    json!({"metadata": {"name": name}, "data": {"k": name}}),
                )
                .unwrap();
                let created = api.create(&PostParams::default(), &cm).await.unwrap();
                acknowledged.push((
                    name,
                    created.metadata.uid.unwrap(),
                    created.metadata.resource_version.unwrap(),
                ));
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    acknowledged.sort();
    assert_eq!(acknowledged.len(), 200);
    env.stop().await;
    drop(env);

    let env = start_on(dir.path()).await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client());
    let mut recovered: Vec<(String, String, String)> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| {
            (
                c.metadata.name.unwrap(),
                c.metadata.uid.unwrap(),
                c.metadata.resource_version.unwrap(),
            )
        })
        .collect();
    recovered.sort();
    assert_eq!(recovered, acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let (store, p, _) = open(dir.path());
    let syncs_before = p.sync_count();

    // Eight writers commit while syncs are held back: none of them is durable yet, and the
    // single sync that follows acknowledges all of them.
    let pause = p.pause_syncs();
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let rv = put(&store, &format!("held-{w}"), "x");
            acknowledge(&store, rv).await;
            rv
        }));
    }
    let durability = store.read().durability();
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.append_count() < 8 {
        assert!(Instant::now() < deadline, "the writers did not commit");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let newest = store.read().resource_version();
    assert_eq!(durability.is_durable(newest), Ok(false));
    assert!(writers.iter().all(|w| !w.is_finished()));
    drop(pause);
    for w in writers {
        let rv = w.await.unwrap();
        assert_eq!(durability.is_durable(rv), Ok(true));
    }
    assert_eq!(p.sync_count() - syncs_before, 1);

    // Free-running writers that each wait for their own acknowledgement still share syncs.
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..50 {
                let rv = put(&store, &format!("free-{w}-{i}"), "y");
                acknowledge(&store, rv).await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(p.append_count(), 8 + 400);
    assert!(
        p.sync_count() < p.append_count(),
        "{} syncs for {} appends",
        p.sync_count(),
        p.append_count()
    );
}

#[tokio::test]
async fn a_crash_with_unsynced_writes_keeps_every_acknowledged_one() {
    let dir = tempfile::tempdir().unwrap();
    let (store, p, _) = open(dir.path());
    for name in ["a", "b"] {
        let rv = put(&store, name, "acknowledged");
        acknowledge(&store, rv).await;
    }
    let pause = p.pause_syncs();
    let c = put(&store, "c", "in flight");
    put(&store, "d", "in flight");
    assert_eq!(store.read().durability().is_durable(c), Ok(false));
    // What a power failure now leaves: the synced prefix, and a torn piece of the next record.
    let (segment, synced) = p.synced_position();
    assert_eq!(segment, p.current_segment());
    assert!(synced < p.segment_bytes());
    let bytes = std::fs::read(&segment).unwrap();
    let image = tempfile::tempdir().unwrap();
    let torn = synced as usize + 11;
    std::fs::write(
        image.path().join(segment.file_name().unwrap()),
        &bytes[..torn],
    )
    .unwrap();
    drop(pause);
    drop((store, p));

    let (store, _p, report) = open(image.path());
    let tail = report.dropped_tail.expect("the torn record is reported");
    assert_eq!((tail.offset, tail.dropped_bytes), (synced, 11));
    assert_eq!(names(&store), ["a", "b"]);
    assert_eq!(store.read().resource_version(), c - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_under_concurrent_load_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let (store, p, _) = open(dir.path());
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (store, acknowledged, stop) = (store.clone(), acknowledged.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("w{w}-{i:05}");
                let rv = put(&store, &name, "v");
                acknowledge(&store, rv).await;
                acknowledged.lock().unwrap().push(name);
                i += 1;
            }
        }));
    }
    while acknowledged.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The crash: everything acknowledged so far, then what the disk holds for sure (synced
    // bytes only grow, so they cover every acknowledgement taken before), plus a torn record.
    let mut acked: Vec<String> = acknowledged.lock().unwrap().clone();
    let (segment, synced) = p.synced_position();
    let bytes = std::fs::read(&segment).unwrap();
    let torn = (synced as usize + 5).min(bytes.len());
    let image = tempfile::tempdir().unwrap();
    std::fs::write(
        image.path().join(segment.file_name().unwrap()),
        &bytes[..torn],
    )
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    drop((store, p));

    let (store, _p, report) = open(image.path());
    let recovered = names(&store);
    acked.sort();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|n| recovered.binary_search(n).is_err())
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert!(recovered.len() >= acked.len());
    if torn > synced as usize {
        assert_eq!(report.dropped_tail.unwrap().offset, synced);
    }
}
