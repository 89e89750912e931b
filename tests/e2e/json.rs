//! End-to-end: `uvsadm -L --json` after known traffic says what the text
//! listing printed at the same moment: the same services, real servers,
//! counters, rates and connections.

use crate::support::Lab;
use serde_json::Value;

/// `addr:port` as the text listings write it.
fn at(addr: &Value, port: &Value) -> String {
    let a = addr.as_str().unwrap_or("?");
    match a.contains(':') {
        true => format!("[{a}]:{port}"),
        false => format!("{a}:{port}"),
    }
}

/// A text listing's rows after its `head` lines, each as its words.
fn text_rows(text: &str, head: usize) -> Vec<Vec<String>> {
    text.lines()
        .skip(head)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The rows the text listing has for this JSON table: a service's
/// protocol and address, then `columns(service)`; each real server's
/// `->` and address, then `columns(server)`.
fn json_rows(v: &Value, columns: impl Fn(&Value, bool) -> Vec<String>) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for s in v["services"].as_array().expect("services") {
        let mut row = vec![
            s["protocol"].as_str().unwrap().to_string(),
            at(&s["address"], &s["port"]),
        ];
        row.extend(columns(s, true));
        rows.push(row);
        for d in s["servers"].as_array().expect("servers") {
            let mut row = vec!["->".to_string(), at(&d["address"], &d["port"])];
            row.extend(columns(d, false));
            rows.push(row);
        }
    }
    rows
}

fn values(v: &Value, names: [&str; 5]) -> Vec<String> {
    names.iter().map(|n| v[n].to_string()).collect()
}

fn json(l: &Lab, line: &str) -> Value {
    let out = l.adm(line);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("uvsadm {line}: {e}\n{out}"))
}

/// Listing `args` as text and as JSON, the JSON taken between two equal
/// text listings (at most five tries, 100 ms apart).
fn steady(l: &Lab, args: &str) -> (String, Value) {
    (0..5)
        .find_map(|_| {
            let before = l.adm(args);
            let v = json(l, &format!("{args} --json"));
            let same = l.adm(args) == before;
            if !same {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            same.then_some((before, v))
        })
        .unwrap_or_else(|| panic!("a steady listing of {args}"))
}

#[test]
fn json_listings_say_what_the_text_listings_say() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(l) = Lab::up_serving(2) else { return };
    l.dr_services("wrr", 3, 1);
    l.tcp_names(40);
    l.udp_names(20, 20000);

    // -Ln: services with their scheduler, servers with forward, weight,
    // active and inactive connections: a JSON listing taken between two
    // equal text listings (the kernel program's reports of the last
    // flows may still be on their way to uvs).
    let (text, v) = steady(&l, "-Ln");
    let plain = |x: &Value, service: bool| match service {
        true => vec![x["scheduler"].as_str().unwrap().to_string()],
        false => {
            let mut r = vec![x["forward"].as_str().unwrap().to_string()];
            r.extend(["weight", "active", "inactive"].map(|n| x[n].to_string()));
            r
        }
    };
    assert_eq!(json_rows(&v, plain), text_rows(&text, 3), "{text}\n{v:#}");
    let tcp = &v["services"][0];
    assert_eq!(tcp["protocol"], "TCP");
    let inactive: u64 = tcp["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["inactive"].as_u64().unwrap() + d["active"].as_u64().unwrap())
        .sum();
    assert_eq!(inactive, 40, "{v:#}");

    // --stats: the five counters, exact in both.
    let names = ["conns", "inpkts", "outpkts", "inbytes", "outbytes"];
    let text = l.adm("-Ln --stats --exact");
    let v = json(&l, "-Ln --stats --exact --json");
    let stats = |x: &Value, _| values(&x["stats"], names);
    assert_eq!(json_rows(&v, stats), text_rows(&text, 3), "{text}\n{v:#}");
    assert_eq!(v["services"][0]["stats"]["conns"], 40, "{v:#}");
    assert_eq!(v["services"][1]["stats"]["conns"], 20, "{v:#}");

    // --rate: the estimator samples every 2 s; a JSON listing taken
    // between two equal text listings saw the same sample.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let names = ["cps", "inpps", "outpps", "inbps", "outbps"];
    let rates = |x: &Value, _| values(&x["rates"], names);
    let (text, v) = steady(&l, "-Ln --rate --exact");
    assert_eq!(json_rows(&v, rates), text_rows(&text, 3), "{text}\n{v:#}");
    assert!(v["services"][0]["rates"]["cps"].as_u64() > Some(0), "{v:#}");

    // -Lnc: the same entries (expiry times aside, which tick).
    let text = l.adm("-Lnc");
    let v = json(&l, "-Lnc --json");
    let mut from_text: Vec<Vec<String>> = text_rows(&text, 2)
        .into_iter()
        .map(|mut r| {
            r.remove(1);
            r
        })
        .collect();
    let mut from_json: Vec<Vec<String>> = v["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|c| {
            vec![
                c["protocol"].as_str().unwrap().to_string(),
                c["state"].as_str().unwrap().to_string(),
                at(&c["source_address"], &c["source_port"]),
                at(&c["virtual_address"], &c["virtual_port"]),
                at(&c["destination_address"], &c["destination_port"]),
            ]
        })
        .collect();
    from_text.sort();
    from_json.sort();
    assert_eq!(from_json.len(), 60, "{text}");
    assert_eq!(from_json, from_text);

    // The other listings parse and say the same.
    let t = json(&l, "-L --timeout --json");
    let text = l.adm("-L --timeout");
    assert_eq!(
        text,
        format!(
            "Timeout (tcp tcpfin udp): {} {} {}\n",
            t["tcp"], t["tcpfin"], t["udp"]
        )
    );
    assert_eq!(
        json(&l, "-L --daemon --json")["daemons"],
        Value::Array(vec![])
    );
    let one = json(&l, &format!("-Ln -t {}:80 --json", crate::support::VIP));
    assert_eq!(one["services"].as_array().map(Vec::len), Some(1));
    let o = l.exec(
        "dir",
        env!("CARGO_BIN_EXE_uvs"),
        &["status", "--json", "--socket", l.socket().to_str().unwrap()],
    );
    let s: Value = serde_json::from_slice(&o.stdout).expect("uvs status --json");
    assert!(s.as_object().is_some_and(|m| !m.is_empty()), "{s}");
}
