//! The environment variables kubelet injects into a pod's containers for
//! the services of its namespace (`pkg/kubelet/envvars`): the
//! `<NAME>_SERVICE_HOST`/`_PORT` pair and the Docker-link forms. Pure: the
//! daemon adds them to every process and `podlab exec` to its command.

use super::{Plan, PodPlan};

/// `my-svc` → `MY_SVC`, as kubelet's `makeEnvVariableName`.
fn env_name(s: &str) -> String {
    s.to_ascii_uppercase().replace('-', "_")
}

/// The variables for `pod`, services sorted by name (kubelet's map has no
/// order; sorted, two runs give the same environment).
///
/// Only services with a cluster IP count (not headless, not ExternalName),
/// as in kubelet. `enableServiceLinks: false` drops them all; there is no
/// API server, so no `KUBERNETES_SERVICE_HOST` unless the lab declares a
/// `kubernetes` service in the pod's namespace.
pub fn service_env(plan: &Plan, pod: &PodPlan) -> Vec<(String, String)> {
    if !pod.service_links {
        return Vec::new();
    }
    let mut services: Vec<_> = plan
        .services
        .iter()
        .filter(|s| s.namespace == pod.namespace)
        .filter_map(|s| s.cluster_ip.map(|ip| (s, ip)))
        .filter(|(s, _)| !s.ports.is_empty())
        .collect();
    services.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let mut out = Vec::new();
    for (s, ip) in services {
        let prefix = env_name(&s.name);
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        let port_var = format!("{prefix}_SERVICE_PORT");
        out.push((port_var.clone(), s.ports[0].port.to_string()));
        for p in &s.ports {
            if let Some(name) = &p.name {
                out.push((format!("{port_var}_{}", env_name(name)), p.port.to_string()));
            }
        }
        for (i, p) in s.ports.iter().enumerate() {
            let proto = p.protocol.to_string();
            let lower = proto.to_ascii_lowercase();
            let url = format!("{lower}://{ip}:{}", p.port);
            if i == 0 {
                // Docker special-cases the first port.
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let pp = format!("{prefix}_PORT_{}_{proto}", p.port);
            out.push((pp.clone(), url));
            out.push((format!("{pp}_PROTO"), lower));
            out.push((format!("{pp}_PORT"), p.port.to_string()));
            out.push((format!("{pp}_ADDR"), ip.to_string()));
        }
    }
    // Kubernetes injects these whatever their size, and a namespace of
    // thousands of services then fails every exec with E2BIG ("argument
    // list too long"). Past this size (a quarter of the kernel's usual
    // 2 MiB for arguments and environment) they are left out: DNS still
    // works, and `enableServiceLinks: false` says the same on purpose.
    let size: usize = out.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    if size > SERVICE_ENV_MAX {
        return Vec::new();
    }
    out
}

/// The most bytes of service variables a pod gets.
pub const SERVICE_ENV_MAX: usize = 512 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = r#"
apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: envt}
spec:
  nodes: 1
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: quiet}
spec:
  enableServiceLinks: false
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Service
metadata: {name: my-web}
spec:
  clusterIP: 10.96.0.50
  selector: {app: web}
  ports:
  - {name: http, port: 80}
  - {name: dns-udp, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: example.com
---
apiVersion: v1
kind: Service
metadata: {name: elsewhere, namespace: other}
spec:
  selector: {app: x}
  ports: [{port: 1}]
"#;

    fn plan() -> Plan {
        let file = match crate::lab::parse("env.yaml", LAB) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        };
        super::super::build(&file).expect("plans")
    }

    #[test]
    fn kubelet_variables_for_the_namespace() {
        let p = plan();
        let pod = p.pod("default", "client").unwrap();
        let env = service_env(&p, pod);
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("MY_WEB_SERVICE_HOST", "10.96.0.50"),
                ("MY_WEB_SERVICE_PORT", "80"),
                ("MY_WEB_SERVICE_PORT_HTTP", "80"),
                ("MY_WEB_SERVICE_PORT_DNS_UDP", "53"),
                ("MY_WEB_PORT", "tcp://10.96.0.50:80"),
                ("MY_WEB_PORT_80_TCP", "tcp://10.96.0.50:80"),
                ("MY_WEB_PORT_80_TCP_PROTO", "tcp"),
                ("MY_WEB_PORT_80_TCP_PORT", "80"),
                ("MY_WEB_PORT_80_TCP_ADDR", "10.96.0.50"),
                ("MY_WEB_PORT_53_UDP", "udp://10.96.0.50:53"),
                ("MY_WEB_PORT_53_UDP_PROTO", "udp"),
                ("MY_WEB_PORT_53_UDP_PORT", "53"),
                ("MY_WEB_PORT_53_UDP_ADDR", "10.96.0.50"),
            ]
        );
        // Headless, ExternalName, other namespaces, and no API server.
        assert!(!env.iter().any(|(k, _)| k.starts_with("DB_")
            || k.starts_with("EXT_")
            || k.starts_with("ELSEWHERE_")
            || k.starts_with("KUBERNETES_")
            || k.starts_with("KUBE_DNS_")));
    }

    #[test]
    fn service_links_can_be_turned_off() {
        let p = plan();
        assert!(service_env(&p, p.pod("default", "quiet").unwrap()).is_empty());
    }

    #[test]
    fn kube_system_pods_see_kube_dns() {
        let p = plan();
        let dns = p
            .pods
            .iter()
            .find(|x| x.namespace == "kube-system")
            .unwrap();
        let env = service_env(&p, dns);
        assert!(env.contains(&("KUBE_DNS_SERVICE_HOST".into(), "10.96.0.10".into())));
        assert!(env.contains(&("KUBE_DNS_SERVICE_PORT_DNS_TCP".into(), "53".into())));
        assert!(env.contains(&("KUBE_DNS_PORT".into(), "udp://10.96.0.10:53".into())));
    }
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn thousands_of_services_do_not_overflow_the_environment() {
        let mut text = String::from("apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {name: big}\nspec: {nodes: 1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, command: [sleep, '1']}]\n");
        for i in 0..5000 {
            text.push_str(&format!("---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec:\n  ports: [{{port: 80}}]\n"));
        }
        let file = crate::lab::parse("big.yaml", &text).expect("parses");
        let plan = crate::plan::build(&file).expect("plans");
        let pod = plan.pod("default", "p").expect("pod");
        assert!(
            super::service_env(&plan, pod).is_empty(),
            "over the cap: none"
        );
    }
}
