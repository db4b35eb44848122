//! The benchmark's peer: the most trivial actix-web JSON handler, to show what the
//! framework alone costs on this machine. `cargo run --release --example peer_json ADDR`
use actix_web::{web, App, HttpResponse, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    println!("peer listening on http://{addr}");
    HttpServer::new(|| {
        App::new().route(
            "/json",
            web::get()
                .to(|| async { HttpResponse::Ok().json(serde_json::json!({"status": "ok"})) }),
        )
    })
    .bind(addr)?
    .run()
    .await
}
