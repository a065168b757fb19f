//! Times HTML → text on hostile input: 100,000 nested block and inline
//! elements (about 1.2 MB), and the same nesting cut to fit html2text's size
//! budget, through `html_to_text`; then html2text alone on smaller nestings,
//! to show why it is not given hostile input.
//! `cargo run --release --example html_budget`.
use std::time::Instant;

use deskgate::mail::text::html_to_text;

fn nested(depth: usize) -> String {
    let mut s = String::new();
    for i in 0..depth {
        s.push_str(if i % 2 == 0 { "<div>" } else { "<span>x " });
    }
    s.push_str("deepest");
    for i in (0..depth).rev() {
        s.push_str(if i % 2 == 0 { "</div>" } else { "</span>" });
    }
    s
}

fn main() {
    for depth in [100_000, 20_000, 90] {
        let html = nested(depth);
        let started = Instant::now();
        let text = html_to_text(&html);
        println!(
            "{depth:>7} nested elements, {:>9} bytes: {:>8.1} ms ({} bytes of text)",
            html.len(),
            started.elapsed().as_secs_f64() * 1000.0,
            text.len()
        );
    }
    for depth in [1_000, 2_000, 4_000, 8_000] {
        let html = nested(depth);
        let started = Instant::now();
        let _ = html2text::from_read(html.as_bytes(), 100);
        println!(
            "{depth:>7} nested elements, {:>9} bytes: {:>8.1} ms in html2text alone",
            html.len(),
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
}
