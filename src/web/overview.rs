//! The overview: host capacity and what the account's VMs use; the project switcher.

use actix_web::HttpResponse;
use askama::Template;

use super::views::Layout;
use super::{render, see_other, uuid_of, Ctx, Posted, WebError};
use crate::service::HostOverview;

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    layout: Layout,
    o: HostOverview,
    mem_used_pct: u64,
    disk_used_pct: u64,
}

fn pct(used: f64, total: f64) -> u64 {
    if total <= 0.0 {
        0
    } else {
        ((used / total) * 100.0).round().clamp(0.0, 100.0) as u64
    }
}

pub async fn page(ctx: Ctx) -> Result<HttpResponse, WebError> {
    let o = ctx.call(|s, who, _| s.host_overview(who)).await?;
    let (mem_used_pct, disk_used_pct) = match &o.host {
        Some(h) => (
            pct(
                (h.mem_total_mib - h.mem_available_mib.min(h.mem_total_mib)) as f64,
                h.mem_total_mib as f64,
            ),
            pct(h.disk_total_gib - h.disk_free_gib, h.disk_total_gib),
        ),
        None => (0, 0),
    };
    render(&OverviewPage {
        layout: ctx.layout("overview"),
        o,
        mem_used_pct,
        disk_used_pct,
    })
}

/// Changes the project the pages work in, then returns to the page it came from.
pub async fn switch_project(p: Posted) -> Result<HttpResponse, WebError> {
    let id = uuid_of(p.form.get("project_id").unwrap_or(""))?;
    if !p.ctx.projects.iter().any(|x| x.id == id) {
        return Err(WebError::NotFound);
    }
    p.ctx.set_project(id);
    let back = p.form.get("back").unwrap_or("/ui/");
    // A detail page belongs to the old project; go to its list instead.
    let to = match back.split('/').nth(2) {
        Some(section) if back.starts_with("/ui/") && !section.is_empty() => {
            format!("/ui/{section}")
        }
        _ => "/ui/".to_string(),
    };
    Ok(see_other(&to))
}
