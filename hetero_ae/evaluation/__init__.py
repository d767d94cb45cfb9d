"""Evaluation: turning a trained model and images into anomaly maps, image scores and the paper's
metrics (Sec. III-D2, IV-B2), and the one ``scores.csv`` they are written to."""
