//! Parses `docker compose ps --format json` into `result.services`. Compose 2.21 and later
//! print one JSON object per line; earlier versions print one JSON array.

use serde_json::{json, Map, Value};

/// One container, in the names runbooks use.
fn container(c: &Value) -> Value {
    let s = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let publishers: Vec<Value> = c
        .get("Publishers")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    json!({
                        "url": p.get("URL").and_then(Value::as_str).unwrap_or_default(),
                        "target_port": p.get("TargetPort").and_then(Value::as_u64).unwrap_or(0),
                        "published_port": p.get("PublishedPort").and_then(Value::as_u64).unwrap_or(0),
                        "protocol": p.get("Protocol").and_then(Value::as_str).unwrap_or_default(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "name": s("Name"),
        "service": s("Service"),
        "state": s("State"),
        "status": s("Status"),
        "image": s("Image"),
        "health": s("Health"),
        "exit_code": c.get("ExitCode").and_then(Value::as_i64).unwrap_or(0),
        "publishers": publishers,
    })
}

/// `services` (every container, by service then name) and `by_service` (each service's
/// first container), from the command's standard output.
pub fn parse(stdout: &str) -> Result<Value, String> {
    let mut raw: Vec<Value> = vec![];
    let trimmed = stdout.trim();
    if trimmed.starts_with('[') {
        match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Array(items)) => raw = items,
            Ok(_) | Err(_) => return Err("`ps --format json` printed an unreadable array".into()),
        }
    } else {
        for (i, line) in trimmed.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).map_err(|e| {
                format!(
                    "`ps --format json` line {} is not JSON ({e}): {line}",
                    i + 1
                )
            })?;
            raw.push(v);
        }
    }
    let mut services: Vec<Value> = raw.iter().map(container).collect();
    services.sort_by(|a, b| {
        (a["service"].as_str(), a["name"].as_str())
            .cmp(&(b["service"].as_str(), b["name"].as_str()))
    });
    let mut by_service = Map::new();
    for c in &services {
        let name = c["service"].as_str().unwrap_or_default().to_string();
        by_service.entry(name).or_insert_with(|| c.clone());
    }
    Ok(json!({ "services": services, "by_service": by_service }))
}

#[cfg(test)]
mod tests {
    use super::*;

    // As printed by Compose v5.6.1 against podman (trimmed).
    const LINES: &str = r#"{"Command":"\"httpd -f\"","ExitCode":0,"Health":"","ID":"3125","Image":"localhost/cx-web:v1","Name":"cx-web-1","Project":"cx","Publishers":[{"URL":"127.0.0.1","TargetPort":8080,"PublishedPort":18080,"Protocol":"tcp"}],"Service":"web","State":"running","Status":"Up 2 seconds"}
{"Command":"\"sleep 1000\"","ExitCode":137,"Health":"","ID":"8b90","Image":"localhost/busybox:test","Name":"cx-worker-1","Project":"cx","Publishers":[],"Service":"worker","State":"exited","Status":"Exited (137) 1 second ago"}
"#;

    #[test]
    fn one_object_per_line() {
        let r = parse(LINES).unwrap();
        assert_eq!(r["services"].as_array().unwrap().len(), 2);
        assert_eq!(r["services"][0]["service"], "web");
        assert_eq!(r["services"][0]["publishers"][0]["published_port"], 18080);
        assert_eq!(r["by_service"]["worker"]["state"], "exited");
        assert_eq!(r["by_service"]["worker"]["exit_code"], 137);
    }

    #[test]
    fn an_array_and_empty_output() {
        let arr = format!("[{}]", LINES.trim().lines().collect::<Vec<_>>().join(","));
        assert_eq!(parse(&arr).unwrap()["services"][1]["name"], "cx-worker-1");
        assert_eq!(
            parse("\n").unwrap(),
            json!({"services": [], "by_service": {}})
        );
        assert!(parse("{not json\n")
            .unwrap_err()
            .contains("line 1 is not JSON"));
    }
}
