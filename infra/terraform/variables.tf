variable "name_prefix" {
  description = "Prefix of every resource name (functions, roles, queue, API, log groups)."
  type        = string
  default     = "otpd"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9-]{0,30}$", var.name_prefix))
    error_message = "Use letters, digits and hyphens, starting with a letter, at most 31 characters."
  }
}

variable "table_name" {
  description = "Name of the DynamoDB table (OTPD_TABLE)."
  type        = string
  default     = "EmailVerification"
}

variable "lambda_zip_dir" {
  description = "Folder holding the cargo-lambda zips, one folder per function: <dir>/generate-otp/bootstrap.zip, verify-otp/, send-otp-email/ (what `cargo lambda build --release --arm64 --output-format zip` writes to target/lambda)."
  type        = string
}

variable "mail_from" {
  description = "Sender of the code mails, e.g. \"Acme <no-reply@acme.example>\" (OTPD_MAIL_FROM). Its domain or address must be a verified SES identity."
  type        = string
}

variable "ses_identity" {
  description = "The SES identity (domain or address) mails are sent from; SendOTPEmail may send only from it."
  type        = string
}

variable "create_ses_identity" {
  description = "Create the SES identity here (its DNS records still have to be published). Set false when it already exists."
  type        = bool
  default     = false
}

variable "product_name" {
  description = "Name shown in the mails (OTPD_PRODUCT_NAME)."
  type        = string
  default     = "otpd"
}

variable "allowed_origins" {
  description = "Browser origins allowed by CORS to call the API, e.g. [\"https://otpd.pages.dev\"]. Empty: no browser access."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for o in var.allowed_origins : can(regex("^https?://[^/*]+$", o))])
    error_message = "Origins look like https://app.example.com: no wildcard, no path."
  }
}

variable "allowed_domains" {
  description = "Email domains that may ask for codes (OTPD_ALLOWED_DOMAINS); *.example.com also matches subdomains. Empty: any."
  type        = list(string)
  default     = []
}

variable "code_ttl_seconds" {
  description = "Code lifetime (OTPD_CODE_TTL), 1 to 3600; OWASP ASVS asks for at most 600."
  type        = number
  default     = 300

  validation {
    condition     = var.code_ttl_seconds >= 1 && var.code_ttl_seconds <= 3600
    error_message = "Between 1 and 3600 seconds."
  }
}

variable "max_attempts" {
  description = "Wrong guesses that lock an address's codes (OTPD_MAX_ATTEMPTS), 1 to 10."
  type        = number
  default     = 5
}

variable "resend_cooldown_seconds" {
  description = "Seconds before an address may get a new code (OTPD_RESEND_COOLDOWN)."
  type        = number
  default     = 60
}

variable "max_codes_per_hour" {
  description = "Codes per address per hour (OTPD_MAX_CODES_PER_HOUR); 0 = no cap."
  type        = number
  default     = 5
}

variable "throttle_rate_limit" {
  description = "Steady requests per second allowed on each route (API Gateway route throttling)."
  type        = number
  default     = 50
}

variable "throttle_burst_limit" {
  description = "Burst of requests allowed on each route."
  type        = number
  default     = 100
}

variable "reserved_concurrency" {
  description = "Concurrent executions reserved (and capped) per function: bounds cost and DynamoDB/SES load under attack."
  type        = number
  default     = 20
}

variable "log_retention_days" {
  description = "Retention of the functions' and the API's log groups."
  type        = number
  default     = 365
}

variable "stream_max_retries" {
  description = "Retries of a failing stream batch before its records go to the dead-letter queue."
  type        = number
  default     = 5
}

variable "alarm_actions" {
  description = "ARNs (e.g. an SNS topic) notified when the dead-letter queue fills or a function fails."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
