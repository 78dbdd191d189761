//! End-to-end tests: the `hacluster` binary, the example files, the plugins and the bootstrap,
//! driven as a user would drive them.

mod aws;
mod cli;
mod examples;
mod invalid_configs;
mod kubeadm_config;
mod libvirt;
mod plan_out;
mod plugins;
mod properties;
mod real_backup;
mod real_bench;
mod real_bootstrap;
mod real_cluster;
mod real_kubeadm;
mod real_membership;
mod real_upgrade;
mod real_vms;
mod robustness;
mod support;
mod vip;
