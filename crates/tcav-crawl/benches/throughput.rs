//! Crawl throughput against a loopback server, rate limits off: images per
//! second, and CPU time per image.
//!
//! Each iteration crawls 1000 distinct small PNGs from a URL list into a
//! fresh dataset root: download, hash, sniff, header check, atomic write
//! (with fsync) to the object store, hard link into the set, manifest line.
//! The server runs in a child process (this same binary, started with
//! `TCAV_CRAWL_BENCH_SERVE=1`), so the CPU time measured is the crawler's
//! alone; on a 2-core machine the two still share the cores, which the
//! throughput includes. The dataset roots are kept until the end: deleting
//! thousands of files between crawls makes ext4's inode allocator search
//! past recently freed inodes, which a real crawl (that deletes nothing)
//! never pays. Run with `cargo bench -p tcav-crawl`.

use std::io::{BufRead, BufReader, Read, Write};
use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use tcav_core::SetName;
use tcav_crawl::source::UrlListSpec;
use tcav_crawl::{CrawlOptions, CrawlRequest, Filters, SourceSpec};

const IMAGES: usize = 1000;
const SERVE_ENV: &str = "TCAV_CRAWL_BENCH_SERVE";
/// The server stops by itself after this long, whatever happens to the
/// benchmark.
const SERVER_LIFETIME: Duration = Duration::from_secs(900);

fn main() {
    if std::env::var_os(SERVE_ENV).is_some() {
        serve();
        return;
    }
    let server = Server::start();
    let mut roots = Vec::new();
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(12))
        .configure_from_args();
    bench(&mut criterion, &server, &mut roots);
    criterion.final_summary();
}

fn bench(criterion: &mut Criterion, server: &Server, roots: &mut Vec<tempfile::TempDir>) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("starting tokio");
    let urls: String = (0..IMAGES).map(|i| format!("http://{}/img/{i}.png\n", server.addr)).collect();
    let mut group = criterion.benchmark_group("crawl");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(IMAGES as u64));
    for concurrency in [4, 16] {
        let options = CrawlOptions {
            user_agent: "tcav-crawl-bench/0.1 (mailto:bench@localhost)".into(),
            concurrency,
            timeout: Duration::from_secs(10),
            retries: 0,
            per_host_rate: NonZeroU32::MAX,
            ..CrawlOptions::default()
        };
        let mut cpu_total = Cpu::default();
        let mut wall_total = Duration::ZERO;
        let mut crawls = 0u32;
        group.bench_function(BenchmarkId::new("1000_small_pngs", format!("concurrency_{concurrency}")), |b| {
            b.iter_custom(|iters| {
                let mut wall = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("a temporary dataset root");
                    let list = dir.path().join("urls.txt");
                    std::fs::write(&list, &urls).expect("writing the URL list");
                    let request = CrawlRequest {
                        set: SetName::new("bench").expect("a valid set name"),
                        query: "bench".into(),
                        queries: Vec::new(),
                        sources: vec![SourceSpec::UrlList(UrlListSpec { path: list })],
                        max_num: IMAGES,
                        filters: Filters::default(),
                    };
                    let root = dir.path().join("data");
                    let cpu_before = cpu_time();
                    let started = Instant::now();
                    let summary = runtime.block_on(tcav_crawl::crawl(&request, &options, &root)).expect("the crawl");
                    let took = started.elapsed();
                    if let (Some(after), Some(before)) = (cpu_time(), cpu_before) {
                        cpu_total += after - before;
                    }
                    assert_eq!(summary.accepted, IMAGES, "every image must be kept");
                    wall += took;
                    wall_total += took;
                    crawls += 1;
                    roots.push(dir);
                }
                wall
            });
        });
        if crawls > 0 {
            let images = f64::from(crawls) * IMAGES as f64;
            let per_image = |d: Duration| d.as_secs_f64() * 1e6 / images;
            let cpu = cpu_total.user + cpu_total.system;
            println!(
                "crawl/1000_small_pngs/concurrency_{concurrency}: {:.0} images/s over {crawls} crawls; CPU {:.0} µs per image ({:.0} user + {:.0} system), {:.2} cores busy",
                images / wall_total.as_secs_f64(),
                per_image(cpu),
                per_image(cpu_total.user),
                per_image(cpu_total.system),
                cpu.as_secs_f64() / wall_total.as_secs_f64()
            );
        }
    }
    group.finish();
}

/// User and system CPU time of this process so far (Linux; `None`
/// elsewhere), in the kernel's 10 ms ticks.
fn cpu_time() -> Option<Cpu> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is the first, utime the 12th, stime the 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // USER_HZ is 100 on every Linux ABI.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).map(|t| Duration::from_millis(t * 10));
    Some(Cpu { user: ticks(11)?, system: ticks(12)? })
}

/// CPU time, split as the kernel counts it.
#[derive(Clone, Copy, Default)]
struct Cpu {
    user: Duration,
    system: Duration,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, earlier: Cpu) -> Cpu {
        Cpu { user: self.user.saturating_sub(earlier.user), system: self.system.saturating_sub(earlier.system) }
    }
}

impl std::ops::AddAssign for Cpu {
    fn add_assign(&mut self, other: Cpu) {
        self.user += other.user;
        self.system += other.system;
    }
}

/// The loopback server in a child process.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start() -> Server {
        let exe = std::env::current_exe().expect("finding this benchmark's executable");
        let mut child = Command::new(exe)
            .env(SERVE_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the loopback server");
        let stdout = child.stdout.take().expect("the server's stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("reading the server's address");
        Server { child, addr: line.trim().to_owned() }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing its stdin tells the server to stop.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Serves `/img/<n>.png` (n < IMAGES, each a distinct 16×16 PNG) on
/// 127.0.0.1 until stdin closes or `SERVER_LIFETIME` passes.
fn serve() {
    let images: Arc<Vec<Vec<u8>>> = Arc::new((0..IMAGES).map(png).collect());
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    std::thread::spawn(|| {
        std::thread::sleep(SERVER_LIFETIME);
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("starting tokio");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{addr}").and_then(|()| stdout.flush()).expect("announcing the address");
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let images = images.clone();
            async move {
                let n = uri
                    .path()
                    .strip_prefix("/img/")
                    .and_then(|p| p.strip_suffix(".png"))
                    .and_then(|n| n.parse::<usize>().ok());
                match n.and_then(|n| images.get(n)) {
                    Some(bytes) => axum::response::IntoResponse::into_response((
                        [(axum::http::header::CONTENT_TYPE, "image/png")],
                        bytes.clone(),
                    )),
                    None => axum::response::IntoResponse::into_response(axum::http::StatusCode::NOT_FOUND),
                }
            }
        });
        axum::serve(listener, app).await.expect("serving");
    });
}

fn png(n: usize) -> Vec<u8> {
    let [a, b, c, d, ..] = (n as u64).to_le_bytes();
    let img = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([a ^ (x as u8 * 16), b ^ (y as u8 * 16), c ^ d]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut out, image::ImageFormat::Png).expect("encoding a PNG");
    out.into_inner()
}
