//! Shared by the bench files that run the scenarios of `vswitch_benches::scenarios`.

use criterion::BenchmarkGroup;
use criterion::Throughput;
use criterion::measurement::WallTime;
use vswitch_benches::alloc::report;
use vswitch_benches::icount::plan;
use vswitch_benches::scenarios::scenario;

/// Benchmarks scenario `name` (warmed up first, its allocations reported as `GROUP/case`) as
/// case `case` of `g`, whose name is `group`.
pub fn bench_scenario(g: &mut BenchmarkGroup<'_, WallTime>, group: &str, case: &str, name: &str) {
    let mut s = scenario(name).unwrap();
    for _ in 0..plan(name, false).warmup {
        s.run();
    }
    s.check();
    report(&format!("{group}/{case}"), s.units, || s.run());
    g.throughput(Throughput::Elements(s.units));
    g.bench_function(case, |b| b.iter(|| s.run()));
}
