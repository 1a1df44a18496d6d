# A complete deployment. Build the functions first, from the repository root:
#   cargo lambda build --release --arm64 --output-format zip -p otpd-lambda
# then here: terraform init && terraform apply

terraform {
  required_version = ">= 1.5.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "domain" {
  description = "Your mail domain (an SES identity)."
  type        = string
  default     = "acme.example"
}

module "otpd" {
  source = "../.."

  name_prefix         = "otpd"
  lambda_zip_dir      = "${path.root}/../../../../target/lambda"
  mail_from           = "Acme <no-reply@${var.domain}>"
  ses_identity        = var.domain
  create_ses_identity = true
  product_name        = "Acme"
  allowed_origins     = ["https://otpd.pages.dev"]
  allowed_domains     = []

  tags = { service = "otpd" }
}

output "api_url" {
  description = "Put this in web/config.js (apiBase)."
  value       = module.otpd.api_url
}

output "table_name" {
  description = "The DynamoDB table."
  value       = module.otpd.table_name
}
