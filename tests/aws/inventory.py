#!/usr/bin/env python3
"""Every AWS resource tagged hacluster:cluster=NAME, as JSON, read with boto3 from a moto
server. The tests compare this with what `hacluster provision` should have made.

    inventory.py --endpoint http://127.0.0.1:PORT --cluster NAME [--region eu-central-1]
"""
import argparse
import base64
import json

import boto3

TAG = "hacluster:cluster"


def tags(obj):
    return {t["Key"]: t["Value"] for t in obj.get("Tags", [])}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--cluster", required=True)
    ap.add_argument("--region", default="eu-central-1")
    a = ap.parse_args()
    kw = dict(endpoint_url=a.endpoint, region_name=a.region, aws_access_key_id="testing", aws_secret_access_key="testing")
    ec2 = boto3.client("ec2", **kw)
    elb = boto3.client("elbv2", **kw)
    mine = [{"Name": f"tag:{TAG}", "Values": [a.cluster]}]
    out = {}

    out["vpcs"] = []
    for v in ec2.describe_vpcs(Filters=mine)["Vpcs"]:
        dns = ec2.describe_vpc_attribute(VpcId=v["VpcId"], Attribute="enableDnsSupport")["EnableDnsSupport"]["Value"]
        host = ec2.describe_vpc_attribute(VpcId=v["VpcId"], Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"]
        out["vpcs"].append({"id": v["VpcId"], "cidr": v["CidrBlock"], "dnsSupport": dns, "dnsHostnames": host})

    out["subnets"] = sorted(
        (
            {"id": s["SubnetId"], "cidr": s["CidrBlock"], "zone": s["AvailabilityZone"], "vpc": s["VpcId"],
             "publicIp": s.get("MapPublicIpOnLaunch", False)}
            for s in ec2.describe_subnets(Filters=mine)["Subnets"]
        ),
        key=lambda s: s["zone"],
    )
    out["internetGateways"] = [
        {"id": g["InternetGatewayId"], "attachedTo": [x["VpcId"] for x in g.get("Attachments", [])]}
        for g in ec2.describe_internet_gateways(Filters=mine)["InternetGateways"]
    ]
    out["routeTables"] = [
        {
            "id": r["RouteTableId"],
            "routes": [{"destination": x.get("DestinationCidrBlock"), "gateway": x.get("GatewayId")} for x in r["Routes"]],
            "subnets": sorted(x["SubnetId"] for x in r.get("Associations", []) if x.get("SubnetId")),
        }
        for r in ec2.describe_route_tables(Filters=mine)["RouteTables"]
    ]
    groups = ec2.describe_security_groups(Filters=mine)["SecurityGroups"]
    role_of = {g["GroupId"]: tags(g).get("hacluster:role") for g in groups}
    out["securityGroups"] = []
    for g in groups:
        rules = []
        for p in g.get("IpPermissions", []):
            for src in p.get("UserIdGroupPairs", []):
                rules.append({"protocol": p["IpProtocol"], "from": p.get("FromPort"), "to": p.get("ToPort"),
                              "source": "group:" + str(role_of.get(src["GroupId"], src["GroupId"]))})
            for src in p.get("IpRanges", []):
                rules.append({"protocol": p["IpProtocol"], "from": p.get("FromPort"), "to": p.get("ToPort"),
                              "source": "cidr:" + src["CidrIp"]})
        out["securityGroups"].append({"id": g["GroupId"], "name": g["GroupName"], "role": role_of[g["GroupId"]],
                                      "vpc": g.get("VpcId"), "rules": rules})
    out["keyPairs"] = [k["KeyName"] for k in ec2.describe_key_pairs(Filters=mine)["KeyPairs"]]

    out["instances"] = []
    for r in ec2.describe_instances(Filters=mine)["Reservations"]:
        for i in r["Instances"]:
            if i["State"]["Name"] == "terminated":
                continue
            t = tags(i)
            ud = ec2.describe_instance_attribute(InstanceId=i["InstanceId"], Attribute="userData").get("UserData", {})
            out["instances"].append({
                "id": i["InstanceId"], "node": t.get("hacluster:node"), "role": t.get("hacluster:role"),
                "type": i["InstanceType"], "zone": i["Placement"]["AvailabilityZone"], "state": i["State"]["Name"],
                "subnet": i.get("SubnetId"), "groups": sorted(role_of.get(g["GroupId"], g["GroupId"]) for g in i.get("SecurityGroups", [])),
                "keyName": i.get("KeyName"), "publicIp": i.get("PublicIpAddress"),
                "userData": base64.b64decode(ud["Value"]).decode() if ud.get("Value") else None,
            })
    out["instances"].sort(key=lambda i: i["node"] or "")
    out["volumes"] = len(ec2.describe_volumes(Filters=mine)["Volumes"])

    out["loadBalancers"], out["targetGroups"], out["listeners"] = [], [], []
    lbs = elb.describe_load_balancers()["LoadBalancers"]
    lb_tags = {d["ResourceArn"]: tags(d) for d in elb.describe_tags(ResourceArns=[x["LoadBalancerArn"] for x in lbs])["TagDescriptions"]} if lbs else {}
    for lb in lbs:
        if lb_tags.get(lb["LoadBalancerArn"], {}).get(TAG) != a.cluster:
            continue
        out["loadBalancers"].append({"arn": lb["LoadBalancerArn"], "name": lb["LoadBalancerName"], "type": lb["Type"],
                                     "scheme": lb["Scheme"], "dns": lb["DNSName"], "state": lb["State"]["Code"],
                                     "zones": sorted(z["ZoneName"] for z in lb.get("AvailabilityZones", [])),
                                     "groups": sorted(role_of.get(g, g) for g in lb.get("SecurityGroups", []))})
        for l in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
            out["listeners"].append({"port": l["Port"], "protocol": l["Protocol"],
                                     "forwardTo": [x.get("TargetGroupArn") for x in l["DefaultActions"]]})
    tgs = elb.describe_target_groups()["TargetGroups"]
    tg_tags = {d["ResourceArn"]: tags(d) for d in elb.describe_tags(ResourceArns=[x["TargetGroupArn"] for x in tgs])["TagDescriptions"]} if tgs else {}
    for tg in tgs:
        if tg_tags.get(tg["TargetGroupArn"], {}).get(TAG) != a.cluster:
            continue
        health = elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
        out["targetGroups"].append({"arn": tg["TargetGroupArn"], "protocol": tg["Protocol"], "port": tg["Port"],
                                    "healthCheckProtocol": tg.get("HealthCheckProtocol"), "healthCheckPath": tg.get("HealthCheckPath"),
                                    "targetType": tg.get("TargetType"), "targets": sorted(h["Target"]["Id"] for h in health),
                                    "attributes": {a["Key"]: a["Value"] for a in
                                                   elb.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}})
    out["total"] = (len(out["vpcs"]) + len(out["subnets"]) + len(out["internetGateways"]) + len(out["routeTables"])
                    + len(out["securityGroups"]) + len(out["keyPairs"]) + len(out["instances"]) + out["volumes"]
                    + len(out["loadBalancers"]) + len(out["targetGroups"]) + len(out["listeners"]))
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
