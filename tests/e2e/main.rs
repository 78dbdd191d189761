//! End-to-end tests: the `hacluster` binary, the example files, and (in later modules) the
//! plugins and the bootstrap, driven as a user would drive them.

mod aws;
mod bootstrap;
mod cli;
mod examples;
mod invalid_configs;
mod kubeadm_config;
mod lab;
mod libvirt;
mod plan_out;
mod plugins;
mod properties;
mod real_cluster;
mod real_kubeadm;
mod real_vms;
mod robustness;
mod support;
mod vip;
