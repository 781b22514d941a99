use super::*;
use crate::diag::Code;
use crate::plan::{self, Weights};
use crate::source::SourceFile;
use std::collections::BTreeSet;
use std::io::BufRead;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// The table.

#[test]
fn every_table_entry_is_a_hub_file_with_a_hash() {
    let mut seen = BTreeSet::new();
    for w in TABLE {
        assert!(seen.insert((w.arch, w.set)), "{} {} twice", w.arch, w.set);
        if let Some(url) = w.url {
            // CLIP's and DINOv2's files, under their published names.
            assert!(url.ends_with(&format!("/{}", w.file)), "{url}");
            assert!(url.starts_with("https://"), "{url}");
            if let Some(sha) = w.sha256 {
                // OpenAI's URLs: the file's SHA-256 is its folder.
                assert_eq!(sha.len(), 64, "{url}");
                assert!(url.contains(&format!("/{sha}/")), "{url}");
            }
            assert_eq!(w.expected_sha256(), w.sha256, "{url}");
            continue;
        }
        assert_eq!(w.expected_sha256(), hash_prefix(w.file));
        assert!(w.file.ends_with(".pth"), "{}", w.file);
        assert!(!w.file.contains('/'), "{}", w.file);
        let h = hash_prefix(w.file).unwrap_or_else(|| panic!("{} has no hash", w.file));
        assert!(h.len() >= 8, "{}", w.file);
        // ShuffleNet V2's files are named `shufflenetv2_…`.
        let prefix = w.arch.name().replace("shufflenet_v2_", "shufflenetv2_");
        let prefix = prefix.split('_').next().unwrap();
        assert!(w.file.starts_with(prefix), "{} {}", w.arch, w.file);
    }
    let hub = Hub::new("/c", DEFAULT_BASE_URL);
    assert_eq!(
        hub.url(lookup(Arch::Resnet50, "IMAGENET1K_V1").unwrap().file),
        "https://download.pytorch.org/models/resnet50-0676ba61.pth"
    );
    assert_eq!(
        lookup(Arch::Resnet50, "IMAGENET1K_V2").unwrap().file,
        "resnet50-11ad3fa6.pth"
    );
    assert_eq!(
        lookup(Arch::Vgg16, "IMAGENET1K_FEATURES").unwrap().file,
        "vgg16_features-amdegroot-88682ab5.pth"
    );
    assert_eq!(
        lookup(Arch::Alexnet, "IMAGENET1K_V1").unwrap().file,
        "alexnet-owt-7be5be79.pth"
    );
    assert_eq!(lookup(Arch::Resnet18, "IMAGENET1K_V2"), None);
}

fn plan_weights(arch: Arch, weights: &str) -> Result<Weights, Vec<Code>> {
    // Every ResNet-family network (ResNeXt and Wide ResNet too) has `layer1`; most others
    // `features.0` (DenseNet `features.conv0`); ShuffleNet V2 is cut after `conv1`.
    let tops = crate::models::catalog::top_level(arch);
    let fam = crate::models::catalog::family(arch);
    let first_feature = crate::models::catalog::cut_points(arch)
        .into_iter()
        .map(|c| c.path)
        .find(|p| p.starts_with("features."));
    let cut = if fam == crate::models::catalog::Family::Resnet {
        "layer1".to_owned()
    } else if fam == crate::models::catalog::Family::Swin {
        // The patch embedding's conv (a feature map; Swin's later maps are tokens).
        "features.0.0".to_owned()
    } else if fam == crate::models::catalog::Family::Dinov2 {
        // The patch conv's map (`patch_embed` gives tokens, which need a read-out).
        "patch_embed.proj".to_owned()
    } else if let Some(first) = first_feature {
        first
    } else {
        tops[0].to_owned()
    };
    let mut text = include_str!("../../experiments/quick_csf.psy")
        .replace("resnet18", arch.name())
        .replace("weights random", &format!("weights {weights}"))
        .replace("cut layer1", &format!("cut {cut}"));
    // A ViT takes 224 px images only.
    if let Some(size) = arch.fixed_input_size() {
        text = text.replace("size 64", &format!("size {size}"));
    }
    let lowered = plan::compile(&SourceFile::new("t.psy", text));
    match lowered.plan {
        Some(p) => Ok(p
            .backbone
            .catalog()
            .expect("a catalog network")
            .weights
            .clone()),
        None => Err(lowered.diags.iter().map(|d| d.code).collect()),
    }
}

#[test]
fn the_table_covers_every_set_the_planner_accepts() {
    let mut names: BTreeSet<&str> = TABLE.iter().map(|w| w.set).collect();
    names.extend(["IMAGENET1K_V3", "IMAGENET1K_SWAG_E2E_V1", "DEFAULT"]);
    names.extend(["OPENAI", "LVD142M"]);
    for &arch in Arch::ALL {
        // `imagenet` is IMAGENET1K_V1, which every torchvision architecture has; `openai`
        // and `dinov2` name CLIP's and DINOv2's released weights.
        let (usual, set) = usual_weights(arch);
        assert!(lookup(arch, set).is_some(), "{arch}");
        assert_eq!(
            plan_weights(arch, usual),
            Ok(Weights::Torchvision(set.into())),
            "{arch}"
        );
        for other in ["imagenet", "openai", "dinov2"] {
            if other != usual {
                assert_eq!(
                    plan_weights(arch, other),
                    Err(vec![Code::PlanUnknownValue]),
                    "{arch} {other}"
                );
            }
        }
        for set in &names {
            let planned = plan_weights(arch, set);
            match lookup(arch, set) {
                Some(_) => assert_eq!(planned, Ok(Weights::Torchvision(set.to_string()))),
                None => assert_eq!(
                    planned,
                    Err(vec![Code::PlanUnknownValue]),
                    "{arch} {set}: the planner accepts a set the table lacks"
                ),
            }
        }
    }
}

#[test]
fn hash_prefixes_follow_torch_hub() {
    assert_eq!(hash_prefix("resnet50-0676ba61.pth"), Some("0676ba61"));
    assert_eq!(
        hash_prefix("vgg16_features-amdegroot-88682ab5.pth"),
        Some("88682ab5")
    );
    assert_eq!(hash_prefix("alexnet-owt-7be5be79.pth"), Some("7be5be79"));
    assert_eq!(
        hash_prefix("shufflenetv2_x0.5-f707e7126e.pth"),
        Some("f707e7126e")
    );
    assert_eq!(hash_prefix("x-abc.tar.gz"), Some("abc"));
    assert_eq!(hash_prefix("weights.pth"), None);
    assert_eq!(hash_prefix("net-final.pth"), None);
    assert_eq!(hash_prefix("net-.pth"), None);
    assert_eq!(hash_prefix("net-ABCD.pth"), None);
    assert_eq!(hash_prefix(""), None);
}

#[test]
fn torch_home_is_found_as_torch_finds_it() {
    let s = |v: &str| Some(OsString::from(v));
    assert_eq!(
        torch_home(s("/t"), s("/x"), s("/h")),
        Some(PathBuf::from("/t"))
    );
    assert_eq!(
        torch_home(s("~/t"), None, s("/h")),
        Some(PathBuf::from("/h/t"))
    );
    assert_eq!(
        torch_home(None, s("/x"), s("/h")),
        Some(PathBuf::from("/x/torch"))
    );
    assert_eq!(
        torch_home(s(""), s(""), s("/h")),
        Some(PathBuf::from("/h/.cache/torch"))
    );
    assert_eq!(torch_home(None, None, None), None);
    assert_eq!(torch_home(s("~"), None, None), None);
    assert_eq!(
        torch_home(None, s("rel"), None),
        Some(PathBuf::from("rel/torch"))
    );
}

#[test]
fn loopback_urls_are_recognised() {
    assert!(is_loopback("http://127.0.0.1:8080/models"));
    assert!(is_loopback("http://localhost/models"));
    assert!(is_loopback("http://[::1]:80/x"));
    assert!(!is_loopback("https://download.pytorch.org/models"));
    assert!(!is_loopback("http://127example.org/"));
}

// ---------------------------------------------------------------------------------------------
// Fetching from a server on 127.0.0.1.

/// A stop flag never set.
static GO: AtomicBool = AtomicBool::new(false);

/// What the test server answers, once per connection.
#[derive(Clone)]
enum Reply {
    /// 200 with this body and its length.
    Ok(Vec<u8>),
    /// 200 announcing `announced` bytes, then sending `body` and closing.
    Short { body: Vec<u8>, announced: usize },
    /// 404 Not Found.
    NotFound,
}

struct Server {
    base: String,
    requests: Arc<AtomicUsize>,
}

/// Serves `reply` to every connection for at most 20 s and 8 connections.
fn serve(reply: Reply) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}/models/", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&requests);
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(20);
        let mut served = 0;
        while served < 8 && Instant::now() < end {
            match listener.accept() {
                Ok((stream, _)) => {
                    served += 1;
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = answer(stream, &reply);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Server { base, requests }
}

fn answer(stream: TcpStream, reply: &Reply) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut lines = io::BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    while lines.read_line(&mut line)? > 0 && line != "\r\n" {
        line.clear();
    }
    let (status, body, announced) = match reply {
        Reply::Ok(b) => ("200 OK", b.as_slice(), b.len()),
        Reply::Short { body, announced } => ("200 OK", body.as_slice(), *announced),
        Reply::NotFound => ("404 Not Found", &b"no such file"[..], 12),
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Length: {announced}\r\nConnection: close\r\n\r\n"
    )?;
    out.write_all(body)?;
    out.flush()
}

/// Bytes that span several read buffers, and a file name carrying their hash prefix.
fn payload() -> (Vec<u8>, String) {
    let bytes: Vec<u8> = (0u32..200_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sha = hex(&Sha256::digest(&bytes));
    (bytes, format!("fakenet-{}.pth", &sha[..10]))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("psyrun-hub-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir.join("hub").join("checkpoints")
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn cleanup(dir: &Path) {
    if let Some(top) = dir.parent().and_then(Path::parent) {
        let _ = fs::remove_dir_all(top);
    }
}

/// A closed port on 127.0.0.1: bound, then released.
fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/models", l.local_addr().unwrap());
    drop(l);
    url
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    checking: usize,
    start_total: Option<Option<u64>>,
    bytes: u64,
    done: usize,
}

impl Seen {
    fn record(&mut self) -> impl FnMut(Fetch<'_>) + '_ {
        |f| match f {
            Fetch::Checking { .. } => self.checking += 1,
            Fetch::Start { total, .. } => self.start_total = Some(total),
            Fetch::Bytes(n) => self.bytes += n,
            Fetch::Done { .. } => self.done += 1,
        }
    }
}

#[test]
fn a_good_download_lands_in_the_cache_and_is_not_fetched_twice() {
    let (bytes, name) = payload();
    let server = serve(Reply::Ok(bytes.clone()));
    let dir = scratch("good");
    let hub = Hub::new(&dir, &server.base);
    let mut seen = Seen::default();
    let path = hub.fetch(&name, &GO, &mut seen.record()).unwrap();
    assert_eq!(path, dir.join(&name));
    assert_eq!(fs::read(&path).unwrap(), bytes);
    assert_eq!(files(&dir), [name.as_str()], "no temporary file left");
    let n = bytes.len() as u64;
    assert_eq!(
        seen,
        Seen {
            checking: 0,
            start_total: Some(Some(n)),
            bytes: n,
            done: 1
        }
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);

    let mut again = Seen::default();
    assert_eq!(hub.fetch(&name, &GO, &mut again.record()).unwrap(), path);
    assert_eq!(again.checking, 1);
    assert_eq!(again.start_total, None);
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        1,
        "no second download"
    );
    cleanup(&dir);
}

#[test]
fn a_corrupt_download_is_not_kept() {
    let (mut bytes, name) = payload();
    bytes[1000] ^= 1;
    let server = serve(Reply::Ok(bytes));
    let dir = scratch("corrupt");
    let hub = Hub::new(&dir, &server.base);
    let err = hub.fetch(&name, &GO, &mut |_| {}).unwrap_err();
    assert!(matches!(err, HubError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&name) && msg.contains("corrupt"), "{msg}");
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    cleanup(&dir);
}

#[test]
fn an_interrupted_download_leaves_no_partial_file() {
    let (bytes, name) = payload();
    let server = serve(Reply::Short {
        announced: bytes.len() + 5000,
        body: bytes,
    });
    let dir = scratch("short");
    let hub = Hub::new(&dir, &server.base);
    let err = hub.fetch(&name, &GO, &mut |_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, HubError::Download { .. }), "{err:?}");
    assert!(msg.contains("broke off"), "{msg}");
    assert!(msg.contains(&hub.url(&name)), "{msg}");
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    cleanup(&dir);
}

#[test]
fn a_missing_file_on_the_server_names_file_url_and_folder() {
    let (_, name) = payload();
    let server = serve(Reply::NotFound);
    let dir = scratch("404");
    let hub = Hub::new(&dir, &server.base);
    let err = hub.fetch(&name, &GO, &mut |_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("HTTP 404"), "{msg}");
    assert!(msg.contains(&name), "{msg}");
    assert!(
        msg.contains(&format!("{}{name}", server.base)),
        "the URL, one slash: {msg}"
    );
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    cleanup(&dir);
}

#[test]
fn offline_names_file_url_and_folder() {
    let dir = scratch("offline");
    let hub = Hub::new(&dir, &closed_port_url());
    let err = hub
        .resolve(Arch::Resnet50, "IMAGENET1K_V2", &GO, &mut |_| {})
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, HubError::Download { .. }), "{err:?}");
    assert!(msg.contains("resnet50-11ad3fa6.pth"), "{msg}");
    assert!(msg.contains(&hub.url("resnet50-11ad3fa6.pth")), "{msg}");
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    cleanup(&dir);
}

#[test]
fn a_cached_file_with_a_wrong_hash_is_rejected_and_left_alone() {
    let (_, name) = payload();
    let dir = scratch("cached");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&name), b"not the weights").unwrap();
    let hub = Hub::new(&dir, &closed_port_url());
    let err = hub.fetch(&name, &GO, &mut |_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, HubError::CachedCorrupt { .. }), "{err:?}");
    assert!(msg.contains("delete it"), "{msg}");
    assert!(
        msg.contains(&dir.join(&name).display().to_string()),
        "{msg}"
    );
    assert_eq!(fs::read(dir.join(&name)).unwrap(), b"not the weights");
    cleanup(&dir);
}

#[test]
fn a_good_cached_file_is_used_without_a_server() {
    let (bytes, name) = payload();
    let dir = scratch("cached-good");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&name), &bytes).unwrap();
    let hub = Hub::new(&dir, &closed_port_url());
    assert_eq!(hub.fetch(&name, &GO, &mut |_| {}).unwrap(), dir.join(&name));
    cleanup(&dir);
}

#[test]
fn an_unknown_set_is_an_error_not_a_panic() {
    let hub = Hub::new(scratch("unknown"), &closed_port_url());
    let err = hub
        .resolve(Arch::Resnet18, "IMAGENET1K_V2", &GO, &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, HubError::UnknownSet { .. }), "{err:?}");
}

#[test]
fn a_stopped_download_keeps_nothing() {
    let (bytes, name) = payload();
    let server = serve(Reply::Ok(bytes));
    let dir = scratch("stop");
    let hub = Hub::new(&dir, &server.base);
    let stop = AtomicBool::new(false);
    let err = hub
        .fetch(&name, &stop, &mut |f| {
            if let Fetch::Bytes(_) = f {
                stop.store(true, Ordering::SeqCst);
            }
        })
        .unwrap_err();
    assert!(matches!(err, HubError::Cancelled { .. }), "{err:?}");
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    cleanup(&dir);
}

// ---------------------------------------------------------------------------------------------
// CLIP's and DINOv2's files: published URLs, whole SHA-256s or none.

#[test]
fn published_urls_are_used_unless_a_mirror_is_set() {
    let clip = lookup(Arch::ClipRn50, "OPENAI").unwrap();
    assert_eq!(clip.file, "RN50.pt");
    let hub = Hub::new("/c", DEFAULT_BASE_URL);
    assert_eq!(hub.url_of(clip), clip.url.unwrap());
    assert_eq!(
        hub.url_of(lookup(Arch::Resnet50, "IMAGENET1K_V1").unwrap()),
        "https://download.pytorch.org/models/resnet50-0676ba61.pth"
    );
    let mirror = Hub::new("/c", "http://mirror.lab/weights/");
    assert_eq!(mirror.url_of(clip), "http://mirror.lab/weights/RN50.pt");
    let dino = lookup(Arch::Dinov2Vits14Reg, "LVD142M").unwrap();
    assert_eq!(
        hub.url_of(dino),
        "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_reg4_pretrain.pth"
    );
    assert_eq!(dino.expected_sha256(), None);
    // `ViT-B-32.pt` looks like it carries a hash prefix (`32`) to torch hub's rule; the
    // published whole hash is what counts.
    let vit = lookup(Arch::ClipVitBx32, "OPENAI").unwrap();
    assert_eq!(hash_prefix(vit.file), Some("32"));
    assert_eq!(vit.expected_sha256(), vit.sha256);
}

#[test]
fn a_clip_file_is_checked_against_its_whole_sha256() {
    let (bytes, _) = payload();
    let sha = hex(&Sha256::digest(&bytes));
    let server = serve(Reply::Ok(bytes.clone()));
    let dir = scratch("clip");
    let hub = Hub::new(&dir, &server.base);
    let url = hub.url("RN50.pt");
    let path = hub
        .fetch_from("RN50.pt", &url, Some(&sha), &GO, &mut |_| {})
        .unwrap();
    assert_eq!(fs::read(&path).unwrap(), bytes);
    // Cached: checked again, whole.
    let mut seen = Seen::default();
    hub.fetch_from("RN50.pt", &url, Some(&sha), &GO, &mut seen.record())
        .unwrap();
    assert_eq!(seen.checking, 1);
    let mut wrong = sha.clone().into_bytes();
    wrong[63] = if wrong[63] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    let err = hub
        .fetch_from("RN50.pt", &url, Some(&wrong), &GO, &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, HubError::CachedCorrupt { .. }), "{err:?}");
    cleanup(&dir);

    // The real table entry: these bytes are not OpenAI's RN50.pt, so the download is refused
    // and nothing is kept (a name without a hash prefix would have been accepted).
    let server = serve(Reply::Ok(bytes));
    let dir = scratch("clip-table");
    let hub = Hub::new(&dir, &server.base);
    let err = hub
        .resolve(Arch::ClipRn50, "OPENAI", &GO, &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, HubError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("RN50.pt"), "{err}");
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    cleanup(&dir);
}

#[test]
fn a_dinov2_file_has_no_published_hash_but_must_arrive_whole() {
    let (bytes, _) = payload();
    let server = serve(Reply::Ok(bytes.clone()));
    let dir = scratch("dinov2");
    let hub = Hub::new(&dir, &server.base);
    let path = hub
        .resolve(Arch::Dinov2Vits14, "LVD142M", &GO, &mut |_| {})
        .unwrap();
    assert_eq!(path, dir.join("dinov2_vits14_pretrain.pth"));
    assert_eq!(fs::read(&path).unwrap(), bytes);
    // Cached: used as it is (nothing to check it against).
    let mut seen = Seen::default();
    assert_eq!(
        hub.resolve(Arch::Dinov2Vits14, "LVD142M", &GO, &mut seen.record())
            .unwrap(),
        path
    );
    assert_eq!(seen, Seen::default());
    cleanup(&dir);

    let server = serve(Reply::Short {
        body: bytes[..1000].to_vec(),
        announced: bytes.len(),
    });
    let dir = scratch("dinov2-short");
    let hub = Hub::new(&dir, &server.base);
    let err = hub
        .resolve(Arch::Dinov2Vitb14, "LVD142M", &GO, &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, HubError::Download { .. }), "{err:?}");
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    cleanup(&dir);
}
