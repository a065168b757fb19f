//! Times HTML → text on hostile input: 100,000 nested block and inline
//! elements (about 1.2 MB), and the same nesting cut to fit html2text's size
//! budget. `cargo run --release --example html_budget`.
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
}
