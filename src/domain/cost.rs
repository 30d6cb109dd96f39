//! The estimated hourly cost of a preview environment, shown on its PR.
//!
//! An estimate from list prices, not a bill: it counts what a preview keeps
//! running (Fargate tasks, one load balancer with one LCU, and the public
//! IPv4 addresses of both) and says which prices it used. On the shared
//! edge, the load balancer and its addresses are divided over the previews
//! on it.
//!
//! A preview's database clone (`preview.database`) is counted as Aurora
//! Serverless v2 at its minimum capacity (`min_acu`), which is what an idle
//! preview's clone scales down to, plus the storage it holds of its own:
//! a copy-on-write clone shares its source's pages and pays only for those
//! it writes, assumed to be `aurora_clone_gb`. Storage is priced as
//! standard, or as I/O-Optimized when `aurora_io_optimized` says the source
//! uses it (a clone keeps its source's storage type); standard storage's
//! per-request I/O charge is left out, a quiet preview makes few. A stopped
//! clone (the environment asleep) costs its storage only. A provisioned
//! instance class is not priced, and the estimate says so.

use serde::Deserialize;
use std::fmt;

/// Hourly prices in USD. The defaults are AWS list prices for us-east-1
/// (Linux/x86); Fargate Spot prices move, so theirs are typical values.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Prices {
    /// Fargate, per vCPU-hour. Default: 0.04048.
    pub fargate_vcpu_hour: f64,
    /// Fargate, per GB-hour of memory. Default: 0.004445.
    pub fargate_gb_hour: f64,
    /// Fargate Spot, per vCPU-hour. Default: 0.012144.
    pub spot_vcpu_hour: f64,
    /// Fargate Spot, per GB-hour of memory. Default: 0.0013335.
    pub spot_gb_hour: f64,
    /// Application Load Balancer, per hour. Default: 0.0225.
    pub alb_hour: f64,
    /// One ALB capacity unit, per hour (a quiet preview uses under one). Default: 0.008.
    pub alb_lcu_hour: f64,
    /// One public IPv4 address, per hour. Default: 0.005.
    pub public_ipv4_hour: f64,
    /// Aurora Serverless v2, per ACU-hour, standard storage. Default: 0.12.
    pub aurora_acu_hour: f64,
    /// Aurora Serverless v2, per ACU-hour, I/O-Optimized. Default: 0.156.
    pub aurora_io_optimized_acu_hour: f64,
    /// Aurora standard storage, per GB-month. Default: 0.10.
    pub aurora_storage_gb_month: f64,
    /// Aurora I/O-Optimized storage, per GB-month. Default: 0.225.
    pub aurora_io_optimized_storage_gb_month: f64,
    /// Whether the cloned cluster uses Aurora I/O-Optimized storage (its
    /// clones do too). Default: false.
    pub aurora_io_optimized: bool,
    /// The GB a clone writes of its own; copy-on-write shares the rest
    /// with its source. Default: 1.
    pub aurora_clone_gb: f64,
    /// Where the prices come from, shown with the estimate.
    /// Default: "AWS list prices, us-east-1".
    pub source: String,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            fargate_vcpu_hour: 0.04048,
            fargate_gb_hour: 0.004445,
            spot_vcpu_hour: 0.012144,
            spot_gb_hour: 0.0013335,
            alb_hour: 0.0225,
            alb_lcu_hour: 0.008,
            public_ipv4_hour: 0.005,
            aurora_acu_hour: 0.12,
            aurora_io_optimized_acu_hour: 0.156,
            aurora_storage_gb_month: 0.10,
            aurora_io_optimized_storage_gb_month: 0.225,
            aurora_io_optimized: false,
            aurora_clone_gb: 1.0,
            source: "AWS list prices, us-east-1".into(),
        }
    }
}

/// What an environment runs, as priced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    /// Fargate CPU units (1024 = 1 vCPU).
    pub cpu_units: u32,
    pub memory_mib: u32,
    pub tasks: u32,
    pub spot: bool,
}

/// A preview's database clone, as priced.
#[derive(Clone, Debug, PartialEq)]
pub struct Database {
    /// The instance class: `db.serverless` is priced by `min_acu`.
    pub instance_class: String,
    pub min_acu: f64,
    /// Stopped (the environment sleeps): storage only.
    pub stopped: bool,
}

/// What the clone adds to an estimate.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseCost {
    pub hourly: f64,
    /// How it was counted, for the comment.
    pub what: String,
}

/// Hours in the month AWS prices storage by.
const HOURS_PER_MONTH: f64 = 730.0;

/// The hourly cost of `database` at `prices`.
pub fn database(database: &Database, prices: &Prices) -> DatabaseCost {
    let (acu_hour, gb_month, storage) = if prices.aurora_io_optimized {
        (
            prices.aurora_io_optimized_acu_hour,
            prices.aurora_io_optimized_storage_gb_month,
            "I/O-Optimized",
        )
    } else {
        (
            prices.aurora_acu_hour,
            prices.aurora_storage_gb_month,
            "standard",
        )
    };
    let storage_hour = prices.aurora_clone_gb * gb_month / HOURS_PER_MONTH;
    let gb = prices.aurora_clone_gb;
    if database.stopped {
        return DatabaseCost {
            hourly: storage_hour,
            what: format!("database stopped, {gb} GB {storage} storage"),
        };
    }
    if database.instance_class != "db.serverless" {
        return DatabaseCost {
            hourly: storage_hour,
            what: format!(
                "database {gb} GB {storage} storage ({} instance not priced)",
                database.instance_class
            ),
        };
    }
    DatabaseCost {
        hourly: database.min_acu * acu_hour + storage_hour,
        what: format!(
            "database {} ACU Serverless v2, {gb} GB {storage} storage",
            database.min_acu
        ),
    }
}

/// The load balancer spans two subnets, so it holds two public addresses.
const ALB_ADDRESSES: f64 = 2.0;

/// An hourly estimate and how it was reached.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub hourly: f64,
    pub tasks: f64,
    pub load_balancer: f64,
    pub addresses: f64,
    pub shape: Shape,
    /// How many previews share the load balancer (1: its own).
    pub sharing: u32,
    /// The database clone, when the preview has one.
    pub database: Option<DatabaseCost>,
    pub source: String,
}

impl Shape {
    /// Parses the config's CPU and memory strings ("256", "512").
    pub fn parse(cpu: &str, memory: &str, tasks: u32, spot: bool) -> Option<Shape> {
        Some(Shape {
            cpu_units: cpu.trim().parse().ok()?,
            memory_mib: memory.trim().parse().ok()?,
            tasks,
            spot,
        })
    }
}

/// The estimate for `shape` behind a load balancer `sharing` previews use
/// (1 for a dedicated one).
pub fn estimate(shape: Shape, prices: &Prices, sharing: u32) -> Estimate {
    let share = f64::from(sharing.max(1));
    let (vcpu, gb) = if shape.spot {
        (prices.spot_vcpu_hour, prices.spot_gb_hour)
    } else {
        (prices.fargate_vcpu_hour, prices.fargate_gb_hour)
    };
    let per_task = f64::from(shape.cpu_units) / 1024.0 * vcpu
        + f64::from(shape.memory_mib) / 1024.0 * gb
        + prices.public_ipv4_hour;
    let tasks = per_task * f64::from(shape.tasks);
    let load_balancer = (prices.alb_hour + prices.alb_lcu_hour) / share;
    let addresses = ALB_ADDRESSES * prices.public_ipv4_hour / share;
    Estimate {
        hourly: tasks + load_balancer + addresses,
        tasks,
        load_balancer,
        addresses,
        shape,
        sharing: sharing.max(1),
        database: None,
        source: prices.source.clone(),
    }
}

impl Estimate {
    /// This estimate with the preview's database clone counted in.
    pub fn with_database(mut self, clone: &Database, prices: &Prices) -> Estimate {
        let cost = database(clone, prices);
        self.hourly += cost.hourly;
        self.database = Some(cost);
        self
    }
}

impl fmt::Display for Estimate {
    /// One line for the PR comment, e.g.
    /// `~$0.0447/hour (~$32.18/month): 1 × 0.25 vCPU, 0.5 GB on Fargate Spot $0.0089 · load balancer $0.0305 · 2 public IPv4 $0.0100. Prices: AWS list prices, us-east-1.`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = self.shape;
        let capacity = if shape.spot {
            "Fargate Spot"
        } else {
            "Fargate"
        };
        let share = if self.sharing > 1 {
            format!(" (shared by {})", self.sharing)
        } else {
            String::new()
        };
        let database = match &self.database {
            Some(cost) => format!(" · {} ${:.4}", cost.what, cost.hourly),
            None => String::new(),
        };
        write!(
            f,
            "~${:.4}/hour (~${:.2}/month): {} × {} vCPU, {} GB on {capacity} ${:.4} · \
             load balancer{share} ${:.4} · {} public IPv4 ${:.4}{database}. Prices: {}.",
            self.hourly,
            self.hourly * HOURS_PER_MONTH,
            shape.tasks,
            f64::from(shape.cpu_units) / 1024.0,
            f64::from(shape.memory_mib) / 1024.0,
            self.tasks,
            self.load_balancer,
            ALB_ADDRESSES as u32,
            self.addresses,
            self.source,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(tasks: u32, spot: bool) -> Shape {
        Shape::parse("256", "512", tasks, spot).unwrap()
    }

    #[test]
    fn spot_task_with_load_balancer() {
        let e = estimate(shape(1, true), &Prices::default(), 1);
        // 0.25 × 0.012144 + 0.5 × 0.0013335 + 0.005 (task IPv4)
        assert!((e.tasks - 0.00870275).abs() < 1e-9, "{}", e.tasks);
        assert!((e.load_balancer - 0.0305).abs() < 1e-9);
        assert!((e.addresses - 0.01).abs() < 1e-9);
        assert!((e.hourly - 0.04920275).abs() < 1e-9);
        assert_eq!(
            e.to_string(),
            "~$0.0492/hour (~$35.92/month): 1 × 0.25 vCPU, 0.5 GB on Fargate Spot $0.0087 · \
             load balancer $0.0305 · 2 public IPv4 $0.0100. Prices: AWS list prices, us-east-1."
        );
    }

    #[test]
    fn on_demand_costs_more_and_idle_costs_the_load_balancer() {
        let prices = Prices::default();
        assert!(
            estimate(shape(1, false), &prices, 1).hourly
                > estimate(shape(1, true), &prices, 1).hourly
        );
        let idle = estimate(shape(0, false), &prices, 1);
        assert_eq!(idle.tasks, 0.0);
        assert!((idle.hourly - 0.0405).abs() < 1e-9);
    }

    #[test]
    fn a_shared_load_balancer_is_divided_over_its_previews() {
        let prices = Prices::default();
        let own = estimate(shape(1, true), &prices, 1);
        let shared = estimate(shape(1, true), &prices, 40);
        assert!((shared.load_balancer - 0.0305 / 40.0).abs() < 1e-9);
        assert!((shared.addresses - 0.01 / 40.0).abs() < 1e-9);
        assert!((shared.tasks - own.tasks).abs() < 1e-12);
        assert!(
            shared
                .to_string()
                .contains("load balancer (shared by 40) $0.0008 · 2 public IPv4 $0.0003"),
            "{shared}"
        );
        // Nobody divides by zero.
        assert_eq!(estimate(shape(1, true), &prices, 0), own);
    }

    fn serverless(min_acu: f64, stopped: bool) -> Database {
        Database {
            instance_class: "db.serverless".into(),
            min_acu,
            stopped,
        }
    }

    #[test]
    fn a_clone_costs_its_minimum_capacity_and_its_own_storage() {
        let prices = Prices::default();
        let base = estimate(shape(1, true), &prices, 1);
        let with = base.clone().with_database(&serverless(0.5, false), &prices);
        // 0.5 ACU × 0.12 + 1 GB × 0.10 / 730
        let clone = 0.06 + 0.1 / 730.0;
        assert!((with.hourly - base.hourly - clone).abs() < 1e-9, "{with:?}");
        assert!(
            with.to_string().contains(
                "· database 0.5 ACU Serverless v2, 1 GB standard storage $0.0601. Prices:"
            ),
            "{with}"
        );
    }

    #[test]
    fn io_optimized_storage_costs_more_per_acu_and_per_gb() {
        let standard = Prices::default();
        let optimized = Prices {
            aurora_io_optimized: true,
            ..Prices::default()
        };
        let cost = database(&serverless(1.0, false), &optimized);
        assert!((cost.hourly - (0.156 + 0.225 / 730.0)).abs() < 1e-9);
        assert!(cost.what.contains("I/O-Optimized"), "{}", cost.what);
        assert!(cost.hourly > database(&serverless(1.0, false), &standard).hourly);
    }

    #[test]
    fn a_stopped_or_provisioned_clone_costs_its_storage() {
        let prices = Prices::default();
        let storage = 0.1 / 730.0;
        let stopped = database(&serverless(2.0, true), &prices);
        assert!((stopped.hourly - storage).abs() < 1e-12);
        assert!(
            stopped.what.starts_with("database stopped"),
            "{}",
            stopped.what
        );
        let provisioned = Database {
            instance_class: "db.t4g.medium".into(),
            min_acu: 0.5,
            stopped: false,
        };
        let cost = database(&provisioned, &prices);
        assert!((cost.hourly - storage).abs() < 1e-12);
        assert!(
            cost.what.contains("db.t4g.medium instance not priced"),
            "{}",
            cost.what
        );
    }

    #[test]
    fn unparsable_sizes_give_no_estimate() {
        assert!(Shape::parse("a quarter", "512", 1, true).is_none());
    }
}
