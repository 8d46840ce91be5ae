//! How many CPUs this process may use: the cgroup CPU quota a container runtime set (v2
//! `cpu.max`, v1 `cpu.cfs_quota_us` over `cpu.cfs_period_us`), else the CPUs it may run on.
//!
//! ONNX Runtime sizes its intra-op pool to the host's physical cores and ignores the quota
//! (microsoft/onnxruntime#29510): a pod limited to 2 CPUs on a 64-core node would start 32
//! spinning threads and spend its quota being throttled. `settings` sizes the pool and the
//! server's own worker counts from this budget instead.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The CPUs this process may use, and where that number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuBudget {
    pub cpus: usize,
    /// The cgroup quota, when one limits the process to at most the CPUs it may run on.
    pub quota: Option<Quota>,
}

/// A CFS bandwidth limit: `quota_us` of CPU time in every `period_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub quota_us: u64,
    pub period_us: u64,
}

impl Quota {
    /// Whole CPUs, rounded down (at least 1): a thread beyond the quota only adds throttling,
    /// and ONNX Runtime's threads spin while they wait for work.
    fn cpus(self) -> usize {
        usize::try_from(self.quota_us / self.period_us.max(1)).unwrap_or(usize::MAX).max(1)
    }

    fn fraction(self) -> f64 {
        self.quota_us as f64 / self.period_us.max(1) as f64
    }
}

impl fmt::Display for CpuBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.quota {
            Some(quota) => write!(
                f,
                "{} (cgroup quota {} µs per {} µs = {:.2} CPUs)",
                self.cpus,
                quota.quota_us,
                quota.period_us,
                quota.fraction()
            ),
            None => write!(f, "{} (the CPUs this process may run on; no cgroup CPU quota within that)", self.cpus),
        }
    }
}

/// This process's budget, read once.
pub fn detect() -> CpuBudget {
    static BUDGET: OnceLock<CpuBudget> = OnceLock::new();
    *BUDGET.get_or_init(|| budget_under(Path::new("/"), runnable_cpus()))
}

/// The CPUs this process may be scheduled on (its affinity mask). Not `available_parallelism`,
/// which already takes the quota into account and so would hide it.
fn runnable_cpus() -> usize {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: cpu_set_t is plain data, zeroed is a valid empty set, and sched_getaffinity
        // writes at most the size passed; CPU_COUNT only reads the set.
        let count = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
                libc::CPU_COUNT(&set)
            } else {
                0
            }
        };
        if let Ok(count @ 1..) = usize::try_from(count) {
            return count;
        }
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The budget as seen under `root` (`/` outside tests), for a process that may run on
/// `runnable` CPUs.
fn budget_under(root: &Path, runnable: usize) -> CpuBudget {
    let proc_cgroup = std::fs::read_to_string(root.join("proc/self/cgroup")).unwrap_or_default();
    match tightest_quota(root, &proc_cgroup) {
        Some(quota) if quota.cpus() <= runnable => CpuBudget { cpus: quota.cpus(), quota: Some(quota) },
        _ => CpuBudget { cpus: runnable.max(1), quota: None },
    }
}

/// Reads one cgroup folder's quota, in one hierarchy's file format.
type ReadQuota = fn(&Path) -> Option<Quota>;

/// The smallest quota on this process's cgroup or any of its ancestors, in either hierarchy.
fn tightest_quota(root: &Path, proc_cgroup: &str) -> Option<Quota> {
    let mounts = root.join("sys/fs/cgroup");
    proc_cgroup
        .lines()
        .filter_map(|line| {
            // `hierarchy-id:controllers:path`; v2's unified hierarchy is `0::path`.
            let mut fields = line.splitn(3, ':');
            let (id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            if id == "0" && controllers.is_empty() {
                Some((mounts.clone(), path, read_v2 as ReadQuota))
            } else if controllers.split(',').any(|controller| controller == "cpu") {
                // v1 mounts the controller under its joined name (`cpu,cpuacct`), often also `cpu`.
                let named = mounts.join(controllers);
                let mount = if named.is_dir() { named } else { mounts.join("cpu") };
                Some((mount, path, read_v1 as ReadQuota))
            } else {
                None
            }
        })
        .flat_map(|(mount, path, read)| quotas_up_to(&mount, path, read))
        .min_by(|a, b| a.fraction().total_cmp(&b.fraction()))
}

/// The quotas found from the cgroup's own folder up to the mount point. Inside a container
/// without a cgroup namespace the path names the host's hierarchy while the mount holds only the
/// container's own cgroup, so folders that do not exist are passed over on the way up.
fn quotas_up_to(mount: &Path, cgroup_path: &str, read: ReadQuota) -> Vec<Quota> {
    let mut folder: PathBuf = mount.join(cgroup_path.trim_start_matches('/'));
    let mut found = Vec::new();
    loop {
        found.extend(read(&folder));
        if folder == mount || !folder.pop() || !folder.starts_with(mount) {
            return found;
        }
    }
}

/// cgroup v2: `cpu.max` holds `max 100000` (no limit) or `150000 100000`.
fn read_v2(folder: &Path) -> Option<Quota> {
    let text = std::fs::read_to_string(folder.join("cpu.max")).ok()?;
    let mut fields = text.split_whitespace();
    let quota_us = fields.next()?.parse().ok()?;
    let period_us = fields.next().map_or(Some(100_000), |period| period.parse().ok())?;
    usable(Quota { quota_us, period_us })
}

/// cgroup v1: `cpu.cfs_quota_us` is -1 without a limit.
fn read_v1(folder: &Path) -> Option<Quota> {
    let read = |name: &str| std::fs::read_to_string(folder.join(name)).ok()?.trim().parse::<i64>().ok();
    let quota_us = u64::try_from(read("cpu.cfs_quota_us")?).ok()?;
    let period_us = u64::try_from(read("cpu.cfs_period_us")?).ok()?;
    usable(Quota { quota_us, period_us })
}

fn usable(quota: Quota) -> Option<Quota> {
    (quota.quota_us > 0 && quota.period_us > 0).then_some(quota)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway folder laid out like `/`, removed on drop.
    struct FakeRoot(PathBuf);

    impl FakeRoot {
        fn new(name: &str) -> Self {
            let root = std::env::temp_dir().join(format!("scorer-cgroup-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join("proc/self")).unwrap();
            Self(root)
        }

        fn write(&self, path: &str, text: &str) -> &Self {
            let path = self.0.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
            self
        }

        fn budget(&self, runnable: usize) -> CpuBudget {
            budget_under(&self.0, runnable)
        }
    }

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn quota(quota_us: u64, period_us: u64) -> Option<Quota> {
        Some(Quota { quota_us, period_us })
    }

    #[test]
    fn v2_container_with_a_two_cpu_limit_on_a_big_host() {
        let root = FakeRoot::new("v2-limit");
        root.write("proc/self/cgroup", "0::/\n").write("sys/fs/cgroup/cpu.max", "200000 100000\n");
        assert_eq!(root.budget(64), CpuBudget { cpus: 2, quota: quota(200_000, 100_000) });
    }

    #[test]
    fn v2_without_a_limit_keeps_the_runnable_cpus() {
        let root = FakeRoot::new("v2-max");
        root.write("proc/self/cgroup", "0::/\n").write("sys/fs/cgroup/cpu.max", "max 100000\n");
        assert_eq!(root.budget(8), CpuBudget { cpus: 8, quota: None });
    }

    #[test]
    fn fractional_quotas_round_down_but_never_to_zero() {
        let root = FakeRoot::new("v2-fraction");
        root.write("proc/self/cgroup", "0::/\n").write("sys/fs/cgroup/cpu.max", "150000 100000\n");
        assert_eq!(root.budget(4).cpus, 1);
        root.write("sys/fs/cgroup/cpu.max", "50000 100000\n");
        assert_eq!(root.budget(4), CpuBudget { cpus: 1, quota: quota(50_000, 100_000) });
    }

    #[test]
    fn v2_limit_on_a_parent_cgroup_counts() {
        // Kubernetes puts the pod's limit on the pod slice and the container in a child of it.
        let root = FakeRoot::new("v2-parent");
        root.write("proc/self/cgroup", "0::/kubepods/pod1/container1\n")
            .write("sys/fs/cgroup/kubepods/pod1/cpu.max", "300000 100000\n")
            .write("sys/fs/cgroup/kubepods/pod1/container1/cpu.max", "max 100000\n");
        assert_eq!(root.budget(16), CpuBudget { cpus: 3, quota: quota(300_000, 100_000) });
    }

    #[test]
    fn v1_quota_over_period() {
        let root = FakeRoot::new("v1");
        root.write("proc/self/cgroup", "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n")
            .write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "400000\n")
            .write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
        // The path names the host's hierarchy; the mount holds only the container's cgroup.
        assert_eq!(root.budget(32), CpuBudget { cpus: 4, quota: quota(400_000, 100_000) });
    }

    #[test]
    fn podman_on_a_v1_host_lists_a_unified_line_too() {
        // As seen in `podman run --cpus 1` here: a `0::` line whose folder has no cpu.max, and
        // the v1 cpu controller mounted at the container's own cgroup.
        let root = FakeRoot::new("podman-v1");
        let cgroup = "/libpod_parent/libpod-3c7d";
        root.write("proc/self/cgroup", &format!("2:cpuacct:{cgroup}\n1:cpu:{cgroup}\n0::{cgroup}\n"))
            .write("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "100000\n")
            .write("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n")
            .write("sys/fs/cgroup/cpuacct/cpuacct.usage", "0\n");
        assert_eq!(root.budget(2), CpuBudget { cpus: 1, quota: quota(100_000, 100_000) });
    }

    #[test]
    fn a_quota_equal_to_the_runnable_cpus_is_still_reported() {
        let root = FakeRoot::new("v2-equal");
        root.write("proc/self/cgroup", "0::/\n").write("sys/fs/cgroup/cpu.max", "200000 100000\n");
        assert_eq!(root.budget(2), CpuBudget { cpus: 2, quota: quota(200_000, 100_000) });
    }

    #[test]
    fn v1_minus_one_is_no_limit() {
        let root = FakeRoot::new("v1-unlimited");
        root.write("proc/self/cgroup", "4:cpu,cpuacct:/\n")
            .write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
            .write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
        assert_eq!(root.budget(6), CpuBudget { cpus: 6, quota: None });
    }

    #[test]
    fn a_quota_above_the_runnable_cpus_changes_nothing() {
        let root = FakeRoot::new("v2-loose");
        root.write("proc/self/cgroup", "0::/\n").write("sys/fs/cgroup/cpu.max", "800000 100000\n");
        assert_eq!(root.budget(2), CpuBudget { cpus: 2, quota: None });
    }

    #[test]
    fn no_cgroup_files_at_all() {
        let root = FakeRoot::new("none");
        assert_eq!(root.budget(3), CpuBudget { cpus: 3, quota: None });
        assert_eq!(root.budget(0).cpus, 1);
    }

    #[test]
    fn the_log_line_says_where_the_number_came_from() {
        let limited = CpuBudget { cpus: 1, quota: quota(150_000, 100_000) };
        assert_eq!(limited.to_string(), "1 (cgroup quota 150000 µs per 100000 µs = 1.50 CPUs)");
        assert!(
            CpuBudget { cpus: 4, quota: None }
                .to_string()
                .starts_with("4 (the CPUs this process may run on; no cgroup CPU quota")
        );
    }
}
