//! Backup schedules (daily or weekly, with a retention count) and the scheduler that
//! runs them. Times are UTC.

use chrono::{Datelike, Duration, NaiveTime, TimeZone, Weekday};
use uuid::Uuid;

use super::{invalid, Page, Paged, Principal, ServiceError, Services};
use crate::jobs::Reconcile;
use crate::model::{now, uuid_key, Backup, BackupSchedule, BackupStatus, Timestamp};

const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// A schedule as asked for; on update, `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct ScheduleWrite {
    pub kind: Option<String>,
    pub time: Option<String>,
    pub day_of_week: Option<String>,
    pub keep_count: Option<i64>,
    pub enabled: Option<bool>,
}

/// Minutes after midnight of `8am`, `12pm`, `8:30pm`, `13:00` or `07:05`.
pub fn parse_time(t: &str) -> Result<u32, ServiceError> {
    let bad = || {
        invalid(format!(
            "time {t:?}: use a time of day such as 8am, 8:30pm or 13:00"
        ))
    };
    let s = t.trim().to_ascii_lowercase();
    let (body, pm) = if let Some(b) = s.strip_suffix("am") {
        (b.trim(), Some(false))
    } else if let Some(b) = s.strip_suffix("pm") {
        (b.trim(), Some(true))
    } else {
        (s.as_str(), None)
    };
    let (h, m) = match body.split_once(':') {
        Some((h, m)) if m.len() == 2 => (h, m),
        Some(_) => return Err(bad()),
        None if pm.is_some() => (body, "00"),
        None => return Err(bad()),
    };
    if h.is_empty() || h.len() > 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 {
        return Err(bad());
    }
    let h = match pm {
        None if h <= 23 => h,
        Some(pm) if (1..=12).contains(&h) => (h % 12) + if pm { 12 } else { 0 },
        _ => return Err(bad()),
    };
    Ok(h * 60 + m)
}

fn weekday(day: &str) -> Option<Weekday> {
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(day))
        .and_then(|i| Weekday::try_from(i as u8).ok())
}

/// The first run strictly after `after`.
pub fn next_run(kind: &str, minute: u32, day: Option<&str>, after: Timestamp) -> Timestamp {
    let time = NaiveTime::from_hms_opt(minute / 60, minute % 60, 0).unwrap_or_default();
    let mut date = after.date_naive();
    for _ in 0..8 {
        let at = chrono::Utc.from_utc_datetime(&date.and_time(time));
        let day_ok = kind != "weekly" || day.and_then(weekday) == Some(date.weekday());
        if at > after && day_ok {
            return at;
        }
        date += Duration::days(1);
    }
    after + Duration::days(1)
}

/// The contract's `runtime`: `Daily at 8am`, `Saturday 8am`.
pub fn runtime_text(s: &BackupSchedule) -> String {
    let (h, m) = (s.minute_of_day / 60, s.minute_of_day % 60);
    let hour12 = if h % 12 == 0 { 12 } else { h % 12 };
    let ampm = if h < 12 { "am" } else { "pm" };
    let t = if m == 0 {
        format!("{hour12}{ampm}")
    } else {
        format!("{hour12}:{m:02}{ampm}")
    };
    match (s.kind.as_str(), &s.day_of_week) {
        ("weekly", Some(d)) => format!("{d} {t}"),
        _ => format!("Daily at {t}"),
    }
}

/// Validated schedule fields: (kind, time text, minute, day, keep).
fn check(
    kind: &str,
    time: &str,
    day: Option<&str>,
    keep: i64,
) -> Result<(String, String, u32, Option<String>, u32), ServiceError> {
    if kind != "daily" && kind != "weekly" {
        return Err(invalid(format!("type {kind:?} must be daily or weekly")));
    }
    let minute = parse_time(time)?;
    let day = match (kind, day) {
        ("weekly", None) => return Err(invalid("day_of_week is required for weekly schedules")),
        ("weekly", Some(d)) => Some(
            DAYS[weekday(d)
                .ok_or_else(|| invalid(format!("day_of_week {d:?} must be Monday to Sunday")))?
                .num_days_from_monday() as usize]
                .to_string(),
        ),
        (_, Some(d)) if weekday(d).is_none() => {
            return Err(invalid(format!(
                "day_of_week {d:?} must be Monday to Sunday"
            )))
        }
        _ => None,
    };
    if !(1..=100).contains(&keep) {
        return Err(invalid("keep_count must be 1 to 100"));
    }
    Ok((kind.into(), time.trim().into(), minute, day, keep as u32))
}

impl Services {
    fn visible_schedule(
        &self,
        who: &Principal,
        id: u64,
        perm: &str,
    ) -> Result<BackupSchedule, ServiceError> {
        who.require_somewhere(perm)?;
        match self.inner.schedules.get(&BackupSchedule::key_of(id))? {
            Some(s)
                if s.account_id == who.account_id
                    && who.require_in(&s.project_id, perm).is_ok() =>
            {
                Ok(s)
            }
            _ => Err(ServiceError::NotFound {
                kind: "Backup schedule",
            }),
        }
    }

    pub fn list_backup_schedules(
        &self,
        who: &Principal,
        project: Option<&Uuid>,
        vm: Option<&Uuid>,
        page: Page,
    ) -> Result<Paged<BackupSchedule>, ServiceError> {
        let projects = self.projects_for_list(who, project)?;
        let mut all: Vec<BackupSchedule> = match vm {
            Some(v) => self
                .inner
                .schedules
                .by_index(BackupSchedule::BY_VM, &uuid_key(v))?,
            None => self.inner.schedules.all()?,
        };
        all.retain(|s| {
            s.account_id == who.account_id
                && projects.contains(&s.project_id)
                && who.require_in(&s.project_id, "backup.view").is_ok()
        });
        all.sort_by_key(|s| s.id);
        Ok(Paged::of(all, page))
    }

    pub fn get_backup_schedule(
        &self,
        who: &Principal,
        id: u64,
    ) -> Result<BackupSchedule, ServiceError> {
        self.visible_schedule(who, id, "backup.view")
    }

    pub fn create_backup_schedule(
        &self,
        who: &Principal,
        header: Option<&str>,
        vm_id: &Uuid,
        w: &ScheduleWrite,
    ) -> Result<BackupSchedule, ServiceError> {
        // vm_id is a field of the body: naming no VM is bad input (400), not a
        // missing resource at the URL.
        let vm = self
            .vm_in_scope(who, header, vm_id, "backup.create")
            .map_err(|e| match e {
                ServiceError::NotFound { kind: "VM" } => {
                    invalid(format!("vm_id {vm_id} names no VM in this project"))
                }
                e => e,
            })?;
        let (kind, time, minute, day, keep) = check(
            w.kind.as_deref().unwrap_or_default(),
            w.time.as_deref().unwrap_or_default(),
            w.day_of_week.as_deref(),
            w.keep_count.unwrap_or(0),
        )?;
        self.add_schedule(&vm, who.user_id, kind, time, minute, day, keep)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_schedule(
        &self,
        vm: &crate::model::Vm,
        created_by: Option<Uuid>,
        kind: String,
        time: String,
        minute: u32,
        day: Option<String>,
        keep: u32,
    ) -> Result<BackupSchedule, ServiceError> {
        let id = self.inner.store.next_id("backup_schedules")?;
        let t = now();
        let s = BackupSchedule {
            id,
            account_id: vm.account_id,
            project_id: vm.project_id,
            vm_id: vm.id,
            created_by,
            name: format!("{} {kind} backup", vm.name),
            region: vm.region.clone(),
            next_run_at: next_run(&kind, minute, day.as_deref(), t),
            kind,
            time,
            minute_of_day: minute,
            day_of_week: day,
            keep_count: keep,
            enabled: true,
            consecutive_failures: 0,
            last_run_at: None,
            last_run_status: None,
            created_at: t,
        };
        self.inner.schedules.create(&s)?;
        Ok(s)
    }

    /// Checks a VM create's `backup_type` / `backup_time` / `backup_date`; returns the
    /// schedule to add once the VM exists (`None` for `none`).
    #[allow(clippy::type_complexity)]
    pub(crate) fn check_vm_backup(
        backup_type: Option<&str>,
        time: Option<&str>,
        day: Option<&str>,
    ) -> Result<Option<(String, String, u32, Option<String>, u32)>, ServiceError> {
        match backup_type {
            None | Some("none") => Ok(None),
            Some(kind @ ("daily" | "weekly")) => {
                let keep = if kind == "daily" { 7 } else { 4 };
                check(kind, time.unwrap_or("8am"), day, keep)
                    .map(Some)
                    .map_err(|e| match e {
                        ServiceError::Invalid(m) if m.starts_with("day_of_week") => {
                            invalid(m.replace("day_of_week", "backup_date"))
                        }
                        ServiceError::Invalid(m) if m.starts_with("time") => {
                            invalid(format!("backup_{m}"))
                        }
                        other => other,
                    })
            }
            Some(other) => Err(invalid(format!(
                "backup_type {other:?} must be none, daily or weekly"
            ))),
        }
    }

    pub fn update_backup_schedule(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: u64,
        w: &ScheduleWrite,
    ) -> Result<BackupSchedule, ServiceError> {
        let s = self.visible_schedule(who, id, "backup.manage")?;
        self.header_names(
            who,
            header,
            &s.project_id,
            "backup.manage",
            "Backup schedule",
        )?;
        let kind = w.kind.clone().unwrap_or(s.kind.clone());
        // Switching to daily drops the day; switching to weekly needs one.
        let day = match (&w.day_of_week, kind.as_str()) {
            (Some(d), _) => Some(d.clone()),
            (None, "weekly") => s.day_of_week.clone(),
            _ => None,
        };
        let (kind, time, minute, day, keep) = check(
            &kind,
            w.time.as_deref().unwrap_or(&s.time),
            day.as_deref(),
            w.keep_count.unwrap_or(s.keep_count as i64),
        )?;
        let enabled = w.enabled.unwrap_or(s.enabled);
        self.inner
            .schedules
            .update::<ServiceError>(&BackupSchedule::key_of(id), |x| {
                x.next_run_at = next_run(&kind, minute, day.as_deref(), now());
                x.kind = kind.clone();
                x.time = time.clone();
                x.minute_of_day = minute;
                x.day_of_week = day.clone();
                x.keep_count = keep;
                x.enabled = enabled;
                Ok(())
            })?
            .ok_or(ServiceError::NotFound {
                kind: "Backup schedule",
            })
    }

    /// Removes a schedule; its backups stay.
    pub fn delete_backup_schedule(
        &self,
        who: &Principal,
        header: Option<&str>,
        id: u64,
    ) -> Result<BackupSchedule, ServiceError> {
        let s = self.visible_schedule(who, id, "backup.delete")?;
        self.header_names(
            who,
            header,
            &s.project_id,
            "backup.delete",
            "Backup schedule",
        )?;
        self.inner.schedules.delete(&BackupSchedule::key_of(id))?;
        Ok(s)
    }

    /// Bytes the schedule's retained backups added to the store.
    pub fn schedule_stored_bytes(&self, s: &BackupSchedule) -> Result<u64, ServiceError> {
        Ok(self
            .inner
            .backups
            .by_index(Backup::BY_VM, &uuid_key(&s.vm_id))?
            .iter()
            .filter(|b| b.schedule_id == Some(s.id))
            .map(|b| b.stored_bytes)
            .sum())
    }

    /// One scheduler pass: starts the backups that are due. A schedule whose VM is busy
    /// (a backup still running, or the VM between states) records `skipped`.
    pub fn run_due_schedules(&self) -> Result<Vec<String>, ServiceError> {
        let mut notes = Vec::new();
        if self.inner.backup_host.is_none() {
            return Ok(notes);
        }
        let t = now();
        for s in self.inner.schedules.all()? {
            if !s.enabled || s.next_run_at > t {
                continue;
            }
            let vm = match self.inner.vms.get(&uuid_key(&s.vm_id))? {
                Some(v) if !v.deleting => v,
                _ => {
                    // The VM is gone: so is its schedule.
                    self.inner.schedules.delete(&BackupSchedule::key_of(s.id))?;
                    notes.push(format!("removed schedule {} of a deleted VM", s.id));
                    continue;
                }
            };
            let busy = self
                .inner
                .backups
                .by_index(Backup::BY_VM, &uuid_key(&vm.id))?
                .iter()
                .any(|b| matches!(b.status, BackupStatus::Pending | BackupStatus::Creating));
            let name = format!("{}-{}", s.name.replace(' ', "-"), t.format("%Y%m%d-%H%M"));
            let outcome = if busy {
                Err("a backup of the VM is still running".to_string())
            } else {
                self.start_backup(&vm, name, s.created_by, Some(s.id))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            };
            let skipped = outcome.is_err();
            if let Err(e) = &outcome {
                notes.push(format!("schedule {} skipped: {e}", s.id));
            }
            self.inner
                .schedules
                .update::<ServiceError>(&BackupSchedule::key_of(s.id), |x| {
                    x.last_run_at = Some(t);
                    if skipped {
                        x.last_run_status = Some("skipped".into());
                    }
                    x.next_run_at = next_run(&x.kind, x.minute_of_day, x.day_of_week.as_deref(), t);
                    Ok(())
                })?;
        }
        Ok(notes)
    }
}

/// The scheduler, as a reconciler part: each pass starts the backups that are due.
pub struct BackupScheduler(pub Services);

impl Reconcile for BackupScheduler {
    fn name(&self) -> &'static str {
        "backup-schedules"
    }

    fn reconcile(&self) -> Result<Vec<String>, String> {
        self.0.run_due_schedules().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_both_clocks() {
        assert_eq!(parse_time("8am").unwrap(), 8 * 60);
        assert_eq!(parse_time("12am").unwrap(), 0);
        assert_eq!(parse_time("12pm").unwrap(), 12 * 60);
        assert_eq!(parse_time("8:30pm").unwrap(), 20 * 60 + 30);
        assert_eq!(parse_time("13:00").unwrap(), 13 * 60);
        assert_eq!(parse_time("07:05").unwrap(), 7 * 60 + 5);
        for bad in ["", "25:00", "13pm", "0am", "8", "8:5", "noon", "12:60"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_runs_fall_on_the_right_day_and_time() {
        let t = chrono::Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap(); // a Monday
        assert_eq!(
            next_run("daily", 8 * 60, None, t),
            chrono::Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap()
        );
        assert_eq!(
            next_run("daily", 10 * 60, None, t),
            chrono::Utc
                .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
                .unwrap()
        );
        assert_eq!(
            next_run("weekly", 8 * 60, Some("Saturday"), t),
            chrono::Utc.with_ymd_and_hms(2026, 11, 28, 8, 0, 0).unwrap()
        );
        assert_eq!(
            next_run("weekly", 8 * 60, Some("Monday"), t),
            chrono::Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap()
        );
    }
}
